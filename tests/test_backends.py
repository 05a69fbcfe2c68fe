"""Backends: specs and configuration, the token rule, the Inference backend on its stand-in
(what huggingface_hub sends, each failure mapped to a message), the Space backend, and the
backend named in each image's metadata."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

import pytest
from PIL import Image

from harness import closed_port
from sd35.backends import (
    BackendAuthError,
    BackendChoice,
    BackendResult,
    CreditsExhaustedError,
    InferenceBackend,
    ModelNotServedError,
    RateLimitedError,
    SpaceBackend,
    add_backend_arguments,
    build_backends,
    choose_backends,
    is_hugging_face_url,
    may_receive_token,
    parse_spec,
)
from sd35.backends.base import DEFAULT_MODEL
from sd35.backends.inference import retry_after
from sd35.errors import InvalidRequestError, QuotaExceededError, SpaceUnavailableError
from sd35.gallery import SQLiteGalleryStore
from sd35.metadata import parse_a1111, read_metadata, read_texts
from sd35.params import GenerationRequest
from sd35.space_client import SpaceClient, Started, space_url
from sd35.studio import Studio
from tests import inference_support
from tests.inference_support import TOKEN

hub_online = inference_support.hub_online
inference = inference_support.inference

REQUEST = GenerationRequest("a lighthouse", seed=7, randomize_seed=False, width=512, height=512)


# --- specs and configuration -------------------------------------------------------------------


def test_specs_parse_into_kinds_and_print_without_secrets() -> None:
    assert parse_spec("space:owner/name").text == "space:owner/name"
    assert parse_spec("inference:fal-ai").model == DEFAULT_MODEL
    assert parse_spec("inference:fal-ai").text == "inference:fal-ai"
    assert parse_spec("inference:together:org/model").text == "inference:together:org/model"
    secret = parse_spec("endpoint:http://user:pw@127.0.0.1:9/x?key=abc")
    assert secret.text == "endpoint:http://127.0.0.1:9/x"
    assert "pw" not in secret.text and "abc" not in secret.text
    assert parse_spec("space:owner/name").can_bill is False
    assert (
        parse_spec("inference:auto").can_bill and parse_spec("endpoint:http://127.0.0.1/").can_bill
    )
    for bad in ("owner/name", "gpu:thing", "space:", "space:not a space", "endpoint:nope"):
        with pytest.raises(InvalidRequestError) as caught:
            parse_spec(bad)
        assert caught.value.field == "backend"


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    return parser.parse_args(argv)


def test_backends_come_in_command_line_order_and_space_is_a_shorthand() -> None:
    args = _args(["--backend", "inference:fal-ai", "--space", "me/dup", "--backend", "space:a/b"])
    choice = choose_backends(args.backend_specs, env={})
    assert [s.text for s in choice.specs] == ["inference:fal-ai", "space:me/dup", "space:a/b"]
    # The command line wins over the environment; the environment over the default.
    env = {"SD35_BACKENDS": "space:x/y, inference:replicate", "SD35_SPACE": "z/w"}
    assert choose_backends(args.backend_specs, env=env).specs[0].text == "inference:fal-ai"
    from_env = choose_backends(None, env=env)
    assert [s.text for s in from_env.specs] == ["space:x/y", "inference:replicate"]
    assert [s.text for s in choose_backends(None, env={"SD35_SPACE": "z/w"}).specs] == ["space:z/w"]


def test_the_default_is_the_official_space_alone_and_never_bills() -> None:
    choice = choose_backends(None, env={})
    assert len(choice.specs) == 1
    (spec,) = choice.specs
    assert spec.kind == "space" and not spec.explicit and not spec.can_bill


def test_a_backend_that_bills_is_never_built_unless_named() -> None:
    implicit = BackendChoice((parse_spec("inference:fal-ai", explicit=False),))
    with pytest.raises(InvalidRequestError, match="can bill"):
        build_backends(implicit, token=None)


def test_a_bad_spec_is_refused_with_what_is_accepted() -> None:
    with pytest.raises(InvalidRequestError, match=r"inference:PROVIDER"):
        choose_backends([("inference", False)], env={})


# --- the token rule ----------------------------------------------------------------------------


def test_the_token_goes_to_hugging_face_hosts_and_granted_origins_only() -> None:
    assert is_hugging_face_url(space_url("owner/name"))
    assert not is_hugging_face_url(space_url("owner/name").replace("https:", "http:"))
    assert not is_hugging_face_url("https://hf.space.example.org/")
    assert not may_receive_token("http://127.0.0.1:8000/")
    assert may_receive_token("http://127.0.0.1:8000/x", granted=["http://127.0.0.1:8000/"])
    assert not may_receive_token("http://127.0.0.1:8001/", granted=["http://127.0.0.1:8000/"])


def test_only_a_space_given_with_an_explicit_token_file_is_granted_the_token() -> None:
    given = [("space:http://127.0.0.1:8000/", True), ("space:http://127.0.0.1:8001/", False)]
    assert choose_backends(given, env={}).token_origins == ()
    granted = choose_backends(given, env={}, token_explicit=True).token_origins
    assert granted == ("http://127.0.0.1:8000",)


# --- the Inference backend on its stand-in -----------------------------------------------------


def test_the_inference_backend_sends_the_hf_inference_wire_format(inference, tmp_path) -> None:
    backend = InferenceBackend(parse_spec(f"endpoint:{inference.url}"), download_dir=tmp_path)
    events = list(backend.generate(REQUEST))
    assert isinstance(events[0], Started)
    result = events[-1]
    assert isinstance(result, BackendResult)
    assert result.backend == f"endpoint:{inference.url}" and result.seed == 7
    with Image.open(result.path) as image:
        assert image.size == (512, 512)
    (body,) = inference.config.seen_bodies
    assert body["inputs"] == "a lighthouse"
    assert body["parameters"] == {
        "width": 512,
        "height": 512,
        "guidance_scale": 4.5,
        "num_inference_steps": 40,
        "seed": 7,
    }
    assert inference.config.seen_headers[0]["accept"] == "image/png"


def test_a_random_seed_is_drawn_here_and_recorded(inference, tmp_path) -> None:
    backend = InferenceBackend(parse_spec(f"endpoint:{inference.url}"), download_dir=tmp_path)
    request = GenerationRequest("dice", randomize_seed=True, width=512, height=512)

    async def run() -> BackendResult:
        return [e async for e in backend.generate(request)][-1]

    first, second = asyncio.run(run()), asyncio.run(run())
    sent = [b["parameters"]["seed"] for b in inference.config.seen_bodies]
    assert sent == [first.seed, second.seed] and first.seed != second.seed


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        ("auth", BackendAuthError, "Make calls to Inference Providers"),
        ("forbidden", BackendAuthError, "HTTP 403"),
        ("credits", CreditsExhaustedError, "used up its credits"),
        ("rate_limit", RateLimitedError, "rate limiting"),
        ("unavailable", SpaceUnavailableError, "unavailable right now (HTTP 503"),
        ("error", SpaceUnavailableError, "HTTP 500"),
        ("not_found", ModelNotServedError, "does not serve the model"),
    ],
)
def test_each_failure_becomes_one_typed_error_with_a_message(
    inference, tmp_path, fault, kind, words
) -> None:
    inference.config.fault = fault
    backend = InferenceBackend(parse_spec(f"endpoint:{inference.url}"), download_dir=tmp_path)
    with pytest.raises(kind) as caught:
        list(backend.generate(REQUEST))
    assert words in caught.value.message
    assert backend.name in caught.value.message or "hf-inference" in caught.value.message


def test_429_honours_retry_after_and_402_has_no_retry_time(inference, tmp_path) -> None:
    backend = InferenceBackend(parse_spec(f"endpoint:{inference.url}"), download_dir=tmp_path)
    inference.config.fault_once, inference.config.retry_after = "rate_limit", 42
    with pytest.raises(RateLimitedError) as limited:
        list(backend.generate(REQUEST))
    assert limited.value.retry_after == timedelta(seconds=42)
    inference.config.fault_once = "credits"
    with pytest.raises(CreditsExhaustedError) as credits:
        list(backend.generate(REQUEST))
    assert isinstance(credits.value, QuotaExceededError)  # waits like quota, never retried alone
    assert credits.value.retry_at is None
    assert "exceeded your monthly included credits" in credits.value.message
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == timedelta(0)


def test_an_unreachable_endpoint_is_unavailable(hub_online, tmp_path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    backend = InferenceBackend(parse_spec(f"endpoint:{url}"), download_dir=tmp_path)
    with pytest.raises(SpaceUnavailableError, match="Could not reach"):
        list(backend.generate(REQUEST))


def test_offline_mode_is_said_plainly(tmp_path) -> None:
    backend = InferenceBackend(parse_spec("endpoint:http://127.0.0.1:9/"), download_dir=tmp_path)
    with pytest.raises(SpaceUnavailableError, match="HF_HUB_OFFLINE"):
        list(backend.generate(REQUEST))


def test_cancel_stops_the_wait_at_once(inference, tmp_path) -> None:
    inference.config.seconds = 3.0
    backend = InferenceBackend(parse_spec(f"endpoint:{inference.url}"), download_dir=tmp_path)

    async def run() -> tuple[list, float]:
        generation = backend.generate(REQUEST)
        events = []
        async for event in generation:
            events.append(event)
            if isinstance(event, Started):
                asyncio.get_running_loop().call_later(0.2, generation.cancel)
        return events, time.monotonic()

    began = time.monotonic()
    events, ended = asyncio.run(run())
    assert events == [Started()]
    assert ended - began < 1.5


def test_an_implicit_token_never_reaches_a_foreign_endpoint(
    inference, tmp_path, monkeypatch
) -> None:
    # HF_TOKEN in the environment: huggingface_hub would pick it up for a URL model by itself.
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    inference.config.fault_once = "auth"
    backend = InferenceBackend(
        parse_spec(f"endpoint:{inference.url}"), token=TOKEN, download_dir=tmp_path
    )
    with pytest.raises(BackendAuthError) as caught:
        list(backend.generate(REQUEST))
    list(backend.generate(REQUEST))
    assert all("authorization" not in h for h in inference.config.seen_headers)
    assert TOKEN not in caught.value.message and TOKEN not in repr(backend)
    granted = InferenceBackend(
        parse_spec(f"endpoint:{inference.url}"),
        token=TOKEN,
        token_origins=(inference.url,),
        download_dir=tmp_path,
    )
    list(granted.generate(REQUEST))
    assert inference.config.seen_headers[-1]["authorization"] == f"Bearer {TOKEN}"


# --- the Space backend and provenance ----------------------------------------------------------


def test_the_space_backend_names_itself_and_keeps_the_token_home(space, tmp_path) -> None:
    choice = choose_backends([(f"space:{space.url}", False)], env={})
    (backend,) = build_backends(choice, token=TOKEN, download_dir=tmp_path)
    assert isinstance(backend, SpaceBackend) and not backend.has_token
    caps = backend.capabilities
    assert caps.cancel and caps.step_progress and not caps.can_bill
    result = list(backend.generate(REQUEST))[-1]
    assert isinstance(result, BackendResult) and result.backend == f"space:{space.url}"
    assert all(
        "x-hf-authorization" not in {k.lower() for k in h} for h in space.config.seen_headers
    )


def test_each_image_names_its_backend_in_its_metadata(inference, space, tmp_path) -> None:
    studio = Studio(SpaceClient(space.url), SQLiteGalleryStore(tmp_path / "outputs"))
    space_backend, inference_backend = build_backends(
        choose_backends([(f"space:{space.url}", False), (f"endpoint:{inference.url}", False)]),
        token=None,
        download_dir=tmp_path,
    )
    for backend in (space_backend, inference_backend):
        result = list(backend.generate(REQUEST))[-1]
        stored = studio.save(result, space=space.url)
        meta = read_metadata(stored.path)
        assert meta is not None and meta.backend == backend.name
        assert parse_a1111(read_texts(stored.path)["parameters"])["Backend"] == backend.name
    assert meta.model == inference.url  # the Inference backend names its model
