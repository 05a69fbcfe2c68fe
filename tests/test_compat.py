"""The lenient mapping of the compatibility APIs (``sd35.api.compat``), image links and the
quota's Retry-After, without a server: the rules a tool's request is run by."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sd35.api import compat
from sd35.api.errors import ApiError, retry_after_seconds
from sd35.api.links import ImageLinks
from sd35.errors import QuotaExceededError
from sd35.params import RATIO_TOLERANCE, NumberRange, SpaceSchema, fit_size
from sd35.provider import StabilityAI_SD35Large

SCHEMA = SpaceSchema()


@pytest.mark.parametrize(
    ("asked", "made"),
    [
        ((1792, 1024), (1024, 576)),  # DALL-E 3 wide
        ((1024, 1792), (576, 1024)),  # DALL-E 3 tall
        ((1536, 1024), (1024, 672)),  # gpt-image-1
        ((256, 256), (512, 512)),  # dall-e-2
        ((600, 600), (608, 608)),  # SillyTavern, in range but off-step
        ((768, 520), (768, 512)),  # a GIMP plugin's step-8 height
        ((1920, 1088), (1024, 576)),  # 1080p
        ((1024, 1024), (1024, 1024)),  # accepted: unchanged
    ],
)
def test_sizes_tools_send_map_to_the_nearest_accepted_size(asked, made) -> None:
    size = fit_size(*asked, SCHEMA)
    assert (size.width, size.height) == made


@settings(max_examples=200, deadline=None)
@given(st.integers(64, 4096), st.integers(64, 4096))
def test_any_size_maps_onto_the_grid_keeping_its_ratio_when_it_can(width, height) -> None:
    size = fit_size(width, height, SCHEMA)
    assert SCHEMA.width.contains(size.width) and SCHEMA.height.contains(size.height)
    ratio = width / height
    error = abs(math.log((size.width / size.height) / ratio))
    if 0.5 <= ratio <= 2:  # every ratio the Space's sizes can show within the tolerance
        assert error <= math.log1p(RATIO_TOLERANCE) + 1e-9
    else:  # the closest ratio it has: 2:1 or 1:2
        assert {size.width, size.height} == {1024, 512}
    assert fit_size(size.width, size.height, SCHEMA) == size  # accepted sizes stay


def test_fitting_follows_the_bounds_the_space_declares() -> None:
    schema = SpaceSchema(
        width=NumberRange(256, 1536, 64, 1024), height=NumberRange(256, 1536, 64, 1024)
    )
    size = fit_size(1792, 1024, schema)
    assert (size.width, size.height) == (1536, 896)


def test_fit_dimensions_notes_the_change_and_refuses_beyond_the_limits() -> None:
    notes: list[compat.Adjustment] = []
    assert compat.fit_dimensions(1792, 1024, SCHEMA, notes) == (1024, 576)
    assert str(notes[0]).startswith("size 1792x1024 -> 1024x576 (")
    assert compat.fit_dimensions(512, 768, SCHEMA, notes) == (512, 768) and len(notes) == 1
    assert compat.fit_dimensions("wide", 512, SCHEMA, notes) == ("wide", 512)  # params refuses
    for width, height in ((63, 512), (512, 4097), (0, 0)):
        with pytest.raises(ApiError) as raised:
            compat.fit_dimensions(width, height, SCHEMA, notes)
        assert raised.value.status == 400 and "64 to 4096" in raised.value.message


def test_guidance_and_steps_above_the_maximum_are_clamped_nonsense_is_left_to_params() -> None:
    notes: list[compat.Adjustment] = []
    assert compat.clamp_number("cfg_scale", 30, SCHEMA.guidance_scale, notes, integral=False) == 7.5
    assert compat.clamp_number("steps", 150, SCHEMA.num_inference_steps, notes, integral=True) == 50
    assert [str(note) for note in notes] == [
        "cfg_scale 30 -> 7.5 (the Space's maximum is 7.5)",
        "steps 150 -> 50 (the Space's maximum is 50)",
    ]
    assert (
        compat.clamp_number("cfg_scale", 7.23, SCHEMA.guidance_scale, notes, integral=False) == 7.2
    )
    assert "steps of 0.1" in str(notes[-1])
    for value in (-1, float("nan"), float("inf"), "high", True, None, 2.5):
        assert (
            compat.clamp_number("steps", value, SCHEMA.num_inference_steps, [], integral=True)
            is value
        )
    assert compat.clamp_number("steps", 20, SCHEMA.num_inference_steps, notes, integral=True) == 20


def test_response_format_follows_openais_rules_per_model_name() -> None:
    assert compat.response_format_for("dall-e-3", None) == "url"
    assert compat.response_format_for("dall-e-2", "b64_json") == "b64_json"
    assert compat.response_format_for("gpt-image-1", "url") == "b64_json"  # always
    assert compat.response_format_for("gpt-image-1-mini", None) == "b64_json"
    assert compat.response_format_for("sd-3.5", None) == "b64_json"
    assert compat.response_format_for(None, "url") == "url"
    with pytest.raises(ApiError):
        compat.response_format_for("dall-e-3", "jpeg")


def test_model_families_and_configured_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compat.model_family("DALL-E-3 ") == "dall-e"
    assert compat.model_family("gpt-image-1.5") == "gpt-image"
    assert compat.model_family("chatgpt-image-latest") == "gpt-image"
    assert compat.model_family("gpt-4o") is None and compat.model_family(5) is None
    monkeypatch.setenv(compat.ALIASES_ENV, " Flux-Dev ,sdxl")
    assert compat.model_family("flux-dev") == "alias" and compat.model_family("SDXL") == "alias"


def test_echoes_leave_out_credentials() -> None:
    body = {
        "url": "http://tavern:secret@127.0.0.1:7860",
        "auth": "tavern:secret",
        "prompt": "a cat",
        "override_settings": {"api_key": "k", "sd_vae": "Automatic", "hf_token": "t"},
        "list": [{"password": "p", "keep": 1}],
    }
    clean = compat.without_credentials(body)
    assert clean == {
        "url": "http://127.0.0.1:7860",
        "prompt": "a cat",
        "override_settings": {"sd_vae": "Automatic"},
        "list": [{"keep": 1}],
    }
    assert "secret" not in repr(clean)


def test_image_links_are_unguessable_and_expire() -> None:
    now = [1000.0]
    links = ImageLinks(ttl=3600, clock=lambda: now[0])
    first, second = links.issue("a.png"), links.issue("b.png")  # type: ignore[arg-type]
    assert first != second and len(first) >= 43  # 256 random bits
    assert links.resolve(first) == "a.png" and links.resolve("a") is None
    now[0] += 3599
    assert links.resolve(second) == "b.png"
    now[0] += 1
    assert links.resolve(first) is None and links.resolve(second) is None


def test_retry_after_counts_down_to_when_the_quota_allows_again() -> None:
    at = datetime(2026, 1, 1, 12, 0, 0)
    error = QuotaExceededError("used up", retry_after=timedelta(seconds=588), now=at)
    assert retry_after_seconds(error, now=at) == 588
    assert retry_after_seconds(error, now=at + timedelta(seconds=100.5)) == 488  # rounded up
    assert retry_after_seconds(error, now=at + timedelta(hours=1)) == 1
    assert retry_after_seconds(QuotaExceededError("used up")) is None


def test_the_provider_takes_the_seeds_dashed_id() -> None:
    provider = StabilityAI_SD35Large
    assert provider.get_model("stabilityai-stable-diffusion-3-5-large") == provider.default_model
