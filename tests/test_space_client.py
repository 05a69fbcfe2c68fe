"""The Space client against real stand-in Spaces on loopback: events, errors, cancel, token,
proxy. No mocked HTTP anywhere."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from harness import closed_port
from sd35.errors import (
    ConnectionLostError,
    EndpointMissingError,
    GenerationFailedError,
    ProxyError,
    QueueFullError,
    QuotaExceededError,
    SpaceBuildingError,
    SpacePausedError,
    SpaceSleepingError,
    SpaceTimeoutError,
    SpaceUnavailableError,
)
from sd35.params import GenerationRequest
from sd35.space_client import (
    Preview,
    Progress,
    Result,
    SpaceClient,
    space_url,
)
from sd35.standin import StandinConfig, StandinServer
from tests.loopback import FakeHub, LoopbackProxy

TOKEN = "hf_TestToken1234567890abcdef"


def assert_stopped_without_finishing(config: StandinConfig, finished_before: int, ended: int):
    """The Space stopped the job: once ``ended`` jobs in all have ended (and none runs), the
    job did not finish."""
    config.wait_ended(ended)
    assert config.jobs_finished == finished_before


def small(prompt: str = "a red fox", **changes) -> GenerationRequest:
    fields = {"width": 512, "height": 512, "num_inference_steps": 8, **changes}
    return GenerationRequest(prompt=prompt, **fields)


@pytest.fixture
def client_for(tmp_path: Path):
    made: list[SpaceClient] = []

    def make(server_or_url, **kwargs) -> SpaceClient:
        url = server_or_url if isinstance(server_or_url, str) else server_or_url.url
        kwargs.setdefault("download_dir", tmp_path / "downloads")
        kwargs.setdefault("retries", 0)
        client = SpaceClient(url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_constructing_a_client_does_no_network_io() -> None:
    client = SpaceClient(f"http://127.0.0.1:{closed_port()}/")  # nothing listens there
    assert client.cached_schema().width.maximum == 1024
    # Only a string conversion: the default Space's id to its URL (nothing is fetched).
    default_url = "https://stabilityai-stable-diffusion-3-5-large.hf.space/"
    assert space_url("stabilityai/stable-diffusion-3-5-large") == default_url


def test_schema_is_read_from_the_space(space, client_for) -> None:
    schema = client_for(space).schema()
    assert schema.from_space
    assert (schema.width.minimum, schema.width.maximum, schema.width.step) == (512, 1024, 32)
    assert schema.num_inference_steps.default == 40
    assert schema.guidance_scale.maximum == 7.5


def test_official_mode_streams_step_progress_then_the_result(space, client_for) -> None:
    events = list(client_for(space).generate(small(num_inference_steps=10)))
    kinds = [type(e).__name__ for e in events]
    assert isinstance(events[-1], Result)
    assert "Started" in kinds and "Preview" not in kinds
    steps = [e for e in events if isinstance(e, Progress)]
    assert steps and all(p.total == 10 for p in steps)
    assert [p.step for p in steps] == sorted(p.step for p in steps)
    assert kinds.index("Started") < kinds.index("Progress") < kinds.index("Result")
    result = events[-1]
    with Image.open(result.path) as image:
        assert image.size == (512, 512)
    assert 0 <= result.seed <= 2**31 - 1


def test_previews_arrive_in_order_before_the_result(preview_space, client_for) -> None:
    preview_space.config.seconds_per_step = 0.03
    events = list(client_for(preview_space).generate(small(num_inference_steps=8)))
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) >= 2
    assert [p.index for p in previews] == sorted(p.index for p in previews)
    assert events.index(previews[0]) < len(events) - 1 and isinstance(events[-1], Result)
    for preview in previews:
        with Image.open(preview.path) as image:
            assert image.size == (512, 512)


def test_async_iteration(preview_space, client_for) -> None:
    async def collect():
        return [e async for e in client_for(preview_space).generate(small())]

    events = asyncio.run(collect())
    assert isinstance(events[-1], Result)
    assert any(isinstance(e, Preview) for e in events)


def test_fixed_seed_reproduces_identical_bytes_and_random_seed_is_reported(space, client_for):
    client = client_for(space)
    first = client.generate(small(seed=1234, randomize_seed=False)).run()
    second = client.generate(small(seed=1234, randomize_seed=False)).run()
    assert first.seed == second.seed == 1234
    assert first.path.read_bytes() == second.path.read_bytes()
    randomized = client.generate(small(seed=1234, randomize_seed=True)).run()
    assert 0 <= randomized.seed <= 2**31 - 1
    assert randomized.seed != 1234  # 1 in 2^31 chance of a false failure
    assert randomized.path.read_bytes() != first.path.read_bytes()


def test_quota_error_is_plain_text_and_suggests_a_token(space, client_for) -> None:
    space.config.fault_once = "quota"
    with pytest.raises(QuotaExceededError) as caught:
        client_for(space).generate(small()).run()
    message = caught.value.message
    assert "You have exceeded your GPU quota (60s requested vs. 56s left)" in message
    assert "Create a free account" in message and "<a" not in message and "href" not in message
    assert "HF_TOKEN" in message
    assert caught.value.retry_after is None


def test_quota_error_with_a_wait_says_when_to_retry(space, client_for) -> None:
    space.config.fault_once = "quota_wait"
    with pytest.raises(QuotaExceededError) as caught:
        client_for(space, token=TOKEN).generate(small()).run()
    error = caught.value
    assert error.retry_after == timedelta(minutes=9, seconds=48)
    assert "You can try again at" in error.message and "9 min 48 s" in error.message
    assert "HF_TOKEN" not in error.message  # a token is already in use


def test_generation_error_keeps_the_spaces_message(space, client_for) -> None:
    space.config.fault_once = "error"
    with pytest.raises(GenerationFailedError) as caught:
        client_for(space).generate(small()).run()
    assert "CUDA out of memory" in caught.value.message
    assert caught.value.space_message


def test_hidden_crash_is_reported_as_a_failure_without_details(space, client_for) -> None:
    space.config.fault_once = "crash"
    with pytest.raises(GenerationFailedError, match="did not say why"):
        client_for(space).generate(small()).run()


def test_output_without_an_image(space, client_for) -> None:
    space.config.fault_once = "no_image"
    with pytest.raises(GenerationFailedError, match="sent no image"):
        client_for(space).generate(small()).run()


def test_space_rejecting_a_value_is_an_invalid_request(space, client_for) -> None:
    from sd35.errors import InvalidRequestError

    # Skip our own validation to see the Space's: it says "less than minimum value 512".
    with pytest.raises(InvalidRequestError, match="minimum value 512"):
        client_for(space).generate(small(width=256)).run()


def test_unreachable_space(client_for) -> None:
    client = client_for(f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(SpaceUnavailableError, match="Could not reach the Space"):
        client.generate(small()).run()
    assert not client.status().reachable


def test_transient_failures_are_retried_then_succeed(client_for) -> None:
    port = closed_port()
    server = StandinServer(StandinConfig(seconds_per_step=0.01), port=port)
    starter = threading.Timer(0.3, server.start)  # the Space comes up while we retry
    starter.start()
    try:
        result = client_for(f"http://127.0.0.1:{port}/", retries=4).generate(small()).run()
        assert isinstance(result, Result)
    finally:
        starter.join()  # start() has returned: stop() then finds the server to stop
        server.stop()


def test_renamed_endpoint(client_for) -> None:
    with StandinServer(StandinConfig(api_name="generate")) as renamed:
        client = client_for(renamed)
        with pytest.raises(EndpointMissingError, match=r"no /infer endpoint.*/generate"):
            client.schema()


def test_full_queue(client_for) -> None:
    config = StandinConfig(seconds_per_step=0.2, concurrency=1, max_queue_size=1)
    with StandinServer(config) as busy:
        client = client_for(busy)
        first = client.generate(small(num_inference_steps=20))
        second = client.generate(small(num_inference_steps=20))
        first_events, second_events = iter(first), iter(second)
        next(first_events)  # running
        next(second_events)  # waiting: the queue is now full
        with pytest.raises(QueueFullError, match="queue is full"):
            client.generate(small()).run()
        first.cancel()
        second.cancel()
        list(first_events), list(second_events)


def test_timeout_cancels_the_remote_job(preview_space, client_for) -> None:
    preview_space.config.seconds_per_step = 0.2
    client = client_for(preview_space, timeout=0.6)
    client.schema()  # connected beforehand: the job itself reaches the Space within the 0.6 s
    finished, ended = preview_space.config.jobs_finished, preview_space.config.jobs_ended
    with pytest.raises(SpaceTimeoutError, match="No image after"):
        client.generate(small(num_inference_steps=20)).run()
    assert_stopped_without_finishing(preview_space.config, finished, ended + 1)


def test_cancel_stops_only_its_own_job(preview_space, client_for) -> None:
    config = preview_space.config
    config.seconds_per_step = 0.05
    client = client_for(preview_space)
    other = client.generate(small("the other job", num_inference_steps=30))
    other_result: list[object] = []
    ended_before = config.jobs_ended
    runner = threading.Thread(target=lambda: other_result.append(other.run()))
    runner.start()
    finished_before = config.jobs_finished
    generation = client.generate(small(num_inference_steps=40))
    seen = []
    for event in generation:
        seen.append(event)
        if isinstance(event, Preview):
            generation.cancel()
    assert not any(isinstance(e, Result) for e in seen)
    runner.join(timeout=30)
    assert other_result and isinstance(other_result[0], Result)  # untouched by the cancel
    assert_stopped_without_finishing(config, finished_before + 1, ended_before + 2)


def test_leaving_the_loop_early_cancels(preview_space, client_for) -> None:
    config = preview_space.config
    config.seconds_per_step = 0.05
    finished, ended = config.jobs_finished, config.jobs_ended
    for event in client_for(preview_space).generate(small(num_inference_steps=40)):
        # A step done: the job runs on the Space (at Started its function may not have begun,
        # and a job cancelled before it begins never counts as ended).
        if isinstance(event, Progress | Preview):
            break
    assert_stopped_without_finishing(config, finished, ended + 1)


def test_space_dying_mid_stream(tmp_path, client_for) -> None:
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sd35.standin", "--port", str(port), "--fault", "die"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = client_for(f"http://127.0.0.1:{port}/", retries=6)
        with pytest.raises(ConnectionLostError, match="dropped before the image arrived"):
            client.generate(small(num_inference_steps=20)).run()
    finally:
        process.kill()
        process.wait()


def test_token_reaches_the_space_as_a_bearer_header_and_nowhere_else(
    space, client_for, caplog, capsys
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(space, token=TOKEN)
    client.generate(small()).run()
    space.config.fault_once = "quota"
    with pytest.raises(QuotaExceededError) as caught:
        client.generate(small()).run()
    headers = space.config.seen_headers[0]
    assert headers.get("x-hf-authorization") == f"Bearer {TOKEN}"
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, repr(client), str(caught.value)):
        assert TOKEN not in text


def test_environment_token_is_not_sent_to_other_hosts(space, client_for, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    client_for(space).generate(small()).run()
    assert all("x-hf-authorization" not in h for h in space.config.seen_headers)


def test_every_request_of_a_call_goes_through_the_proxy(preview_space, client_for) -> None:
    port = int(preview_space.url.rsplit(":", 1)[1].strip("/"))
    # This host name resolves only inside the proxy: a request that bypassed it would fail.
    with LoopbackProxy({"sd35-standin.test": ("127.0.0.1", port)}) as proxy:
        client = client_for(f"http://sd35-standin.test:{port}/", proxy=proxy.url)
        events = list(client.generate(small()))
        assert isinstance(events[-1], Result)
        cancelled = client.generate(small(num_inference_steps=40))
        preview_space.config.seconds_per_step = 0.05
        for event in cancelled:
            if isinstance(event, Preview):
                cancelled.cancel()
    paths = proxy.paths()
    assert "/config" in paths
    assert "/gradio_api/queue/join" in paths and "/gradio_api/queue/data" in paths
    assert any("/file=" in p for p in paths)  # image downloads
    assert "/gradio_api/cancel" in paths


def test_proxy_down_is_named(space, client_for) -> None:
    client = client_for(space, proxy=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ProxyError, match="through the proxy"):
        client.generate(small()).run()


#: A stage the Hub reports for a Space -> the error and words a user then sees.
HUB_STAGE_ERRORS = {
    "SLEEPING": (SpaceSleepingError, "asleep"),
    "BUILDING": (SpaceBuildingError, "starting up"),
    "PAUSED": (SpacePausedError, "paused"),
    "RUNTIME_ERROR": (SpacePausedError, "broken"),
}


@pytest.mark.parametrize("stage", HUB_STAGE_ERRORS)
def test_space_states_from_the_hub(stage, client_for, monkeypatch) -> None:
    from sd35.space_client import ClientSettings, map_error

    error, words = HUB_STAGE_ERRORS[stage]
    with FakeHub(stage) as hub:
        settings = ClientSettings(
            url=f"http://127.0.0.1:{closed_port()}/",
            space_id="stabilityai/stable-diffusion-3-5-large",
            token=None,
            proxy=None,
            download_dir=Path("."),
            connect_timeout=2,
            read_timeout=2,
            hub_url=hub.url,
        )
        mapped = map_error(ConnectionError("refused"), settings)
    assert isinstance(mapped, error)
    assert words in mapped.message


def test_our_clients_take_each_stream_message_as_it_arrives(space) -> None:
    """gradio_client's stream reader sleeps 50 ms whenever its queue is empty; the clients
    sd35 makes wake it when a message arrives, and leave every other client as it was."""
    import gradio_client.utils as client_utils
    from gradio_client import Client

    from sd35.gradio_adapter import GradioJob, wake_on_arrival

    ours = Client(space.url, verbose=False, download_files=False)
    theirs = Client(space.url, verbose=False, download_files=False)
    assert wake_on_arrival(ours)
    ours.pending_messages_per_event.setdefault("event", deque())
    theirs.pending_messages_per_event.setdefault("event", deque())
    woke = threading.Event()

    def reader(pending_messages: deque) -> None:
        # As stream_sse_v1plus does: look, then sleep when there is nothing yet.
        while not pending_messages:
            client_utils.time.sleep(60)
        woke.set()

    thread = threading.Thread(
        target=reader, args=(ours.pending_messages_per_event["event"],), daemon=True
    )
    thread.start()
    ours.pending_messages_per_event["event"].append({"msg": "process_completed"})
    assert woke.wait(timeout=10), "the reader slept on after a message arrived"

    # Another client's reader still sleeps as it asked (its deque is a plain one).
    assert type(theirs.pending_messages_per_event["event"]) is deque
    began = time.monotonic()
    client_utils.time.sleep(0.05)
    assert time.monotonic() - began >= 0.05

    # A job through our client runs to its end as before, and each of its updates (and its
    # end) calls the waiting event loop instead of leaving it to look later.
    calls: list[str] = []
    ended = threading.Event()
    job = GradioJob(ours, "/infer", small(num_inference_steps=5).as_inputs())
    assert job.when_updated(lambda: calls.append("update"))
    job.when_done(ended.set)
    assert ended.wait(timeout=60)
    updates = job.updates()
    assert job.result() and len(updates) >= 5  # at least a progress update per step
    assert len(calls) == len(updates)
    ours.close()
    theirs.close()


def test_a_wake_up_after_its_loop_is_gone_does_not_fail_the_reporting_thread() -> None:
    """gradio_client's threads may report a job's end after the caller's event loop closed
    (``asyncio.run`` returned): the report must not raise in their thread."""
    from sd35.space_client import _Wakeup

    loop = asyncio.new_event_loop()
    wakeup = _Wakeup(loop)
    loop.close()
    errors: list[BaseException] = []

    def report() -> None:
        try:
            wakeup.set_threadsafe()
        except BaseException as error:  # recorded for the assertion
            errors.append(error)

    thread = threading.Thread(target=report)
    thread.start()
    thread.join(timeout=10)
    assert errors == []
