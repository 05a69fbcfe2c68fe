"""The stand-in Space, driven the way the rest of sd35 drives the real one: gradio_client."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError, Status, StatusUpdate
from PIL import Image

from harness import wait_for
from sd35.params import INPUT_ORDER
from sd35.standin import (
    CRASH_MESSAGE,
    ERROR_MESSAGE,
    MAX_SEED,
    QUOTA_MESSAGE,
    QUOTA_TITLE,
    QUOTA_WAIT_MESSAGE,
    StandinConfig,
    StandinServer,
    _preview_steps,
    paint_image,
)

ROOT = Path(__file__).resolve().parents[1]
FAST = 0.002  # seconds per step: keeps the suite quick
#: (prompt, negative_prompt, seed, randomize_seed, width, height, guidance_scale, steps)
ARGS: tuple[Any, ...] = ("a red fox in the snow", "", 1234, False, 512, 512, 4.5, 6)
VERBOSE_ERROR_HINT = "has not enabled verbose error reporting"

MakeClient = Callable[..., Client]


@pytest.fixture(scope="module")
def server() -> Iterator[StandinServer]:
    with StandinServer(StandinConfig(seconds_per_step=FAST)) as srv:
        yield srv


@pytest.fixture(scope="module")
def preview_server() -> Iterator[StandinServer]:
    with StandinServer(StandinConfig(seconds_per_step=FAST, previews=True, preview_every=2)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset_shared_config(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests may retune a shared server; put it back afterwards."""
    yield
    for name in ("server", "preview_server"):
        if name in request.fixturenames:
            cfg = request.getfixturevalue(name).config
            cfg.fault = cfg.fault_once = None
            cfg.seconds_per_step = FAST
            cfg.queue_hold = 0.0


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    clients: list[Client] = []

    def make(url: str, **kwargs: Any) -> Client:
        folder = tmp_path / f"client{len(clients)}"
        client = Client(url, verbose=False, download_files=str(folder), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def run(client: Client, *args: Any, timeout: float = 30) -> tuple[Any, ...]:
    return client.submit(*args, api_name="/infer").result(timeout=timeout)


def watch(job: Any, timeout: float = 30) -> list[StatusUpdate]:
    """Poll a job's status until it is done; return the distinct updates seen."""
    seen: list[StatusUpdate] = []
    deadline = time.monotonic() + timeout
    while not job.done():
        status = job.status()
        if not seen or (status.code, status.progress_data) != (
            seen[-1].code,
            seen[-1].progress_data,
        ):
            seen.append(status)
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.003)
    return seen


# ----------------------------------------------------------------------------------------
# The declared API


def test_view_api_declares_infer_with_the_spaces_inputs(
    server: StandinServer, make_client: MakeClient
) -> None:
    api = make_client(server.url).view_api(return_format="dict", print_info=False)
    assert list(api["named_endpoints"]) == ["/infer"]
    endpoint = api["named_endpoints"]["/infer"]
    params = {p["parameter_name"]: p for p in endpoint["parameters"]}
    assert [p["parameter_name"] for p in endpoint["parameters"]] == list(INPUT_ORDER)
    assert [p["component"] for p in endpoint["parameters"]] == [
        "Textbox",
        "Textbox",
        "Slider",
        "Checkbox",
        "Slider",
        "Slider",
        "Slider",
        "Slider",
    ]
    assert not params["prompt"]["parameter_has_default"]
    defaults = {"seed": 0, "randomize_seed": True, "width": 1024, "height": 1024}
    defaults |= {"guidance_scale": 4.5, "num_inference_steps": 40}
    for name, value in defaults.items():
        assert params[name]["parameter_has_default"], name
        assert params[name]["parameter_default"] == value, name
    bounds = {
        "seed": "between 0 and 2147483647",
        "width": "between 512 and 1024",
        "height": "between 512 and 1024",
        "guidance_scale": "between 0.0 and 7.5",
        "num_inference_steps": "between 1 and 50",
    }
    for name, text in bounds.items():
        assert text in params[name]["type"]["description"], name
    assert [r["component"] for r in endpoint["returns"]] == ["Image", "Slider"]


def test_renamed_api(make_client: MakeClient) -> None:
    with StandinServer(StandinConfig(api_name="generate", seconds_per_step=FAST)) as srv:
        client = make_client(srv.url)
        api = client.view_api(return_format="dict", print_info=False)
        assert list(api["named_endpoints"]) == ["/generate"]
        with pytest.raises(ValueError, match="Cannot find a function with `api_name`: /infer"):
            client.submit(*ARGS, api_name="/infer")
        path, seed = client.submit(*ARGS, api_name="/generate").result(timeout=30)
        assert seed == 1234 and Path(path).is_file()


# ----------------------------------------------------------------------------------------
# Returning mode (the official Space)


def test_returning_mode_gives_a_webp_and_the_seed_with_step_progress(
    server: StandinServer, make_client: MakeClient
) -> None:
    server.config.seconds_per_step = 0.03
    before = server.config.jobs_finished
    job = make_client(server.url).submit(*ARGS[:7], 10, api_name="/infer")
    statuses = watch(job)
    path, seed = job.result(timeout=30)

    assert seed == 1234
    with Image.open(path) as image:
        assert image.format == "WEBP"
        assert image.size == (512, 512)
    assert len(job.outputs()) == 1  # no intermediate images
    progress = [s for s in statuses if s.code == Status.PROGRESS and s.progress_data]
    assert len(progress) >= 3
    for status in progress:
        (unit,) = status.progress_data
        assert unit.length == 10 and unit.unit == "steps" and 0 <= unit.index <= 10
    indices = [s.progress_data[0].index for s in progress]
    assert indices == sorted(indices) and indices[-1] > indices[0]
    assert server.config.jobs_finished == before + 1


def test_fixed_seed_gives_identical_bytes(server: StandinServer, make_client: MakeClient) -> None:
    client = make_client(server.url)
    first, seed1 = run(client, *ARGS)
    second, seed2 = run(client, *ARGS)
    other, _ = run(client, ARGS[0], "", 1235, *ARGS[3:])
    assert seed1 == seed2 == 1234
    assert Path(first).read_bytes() == Path(second).read_bytes()
    assert Path(first).read_bytes() != Path(other).read_bytes()


def test_randomized_seed_is_returned_and_reproducible(
    server: StandinServer, make_client: MakeClient
) -> None:
    client = make_client(server.url)
    path, seed = run(client, ARGS[0], "", 0, True, *ARGS[4:])
    assert isinstance(seed, int) and 0 <= seed <= MAX_SEED
    again, same_seed = run(client, ARGS[0], "", seed, False, *ARGS[4:])
    assert same_seed == seed
    assert Path(path).read_bytes() == Path(again).read_bytes()


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (4, 256, "Value 256 is less than minimum value 512."),
        (5, 2000, "Value 2000 is greater than maximum value 1024."),
        (6, 8.0, "Value 8.0 is greater than maximum value 7.5."),
        (7, 0, "Value 0 is less than minimum value 1."),
    ],
)
def test_out_of_range_values_are_rejected_by_gradio(
    server: StandinServer, make_client: MakeClient, index: int, value: Any, message: str
) -> None:
    args = list(ARGS)
    args[index] = value
    started = server.config.jobs_started
    with pytest.raises(AppError) as caught:
        run(make_client(server.url), *args)
    # The Slider's own preprocess raises gr.Error: an AppError, not a ValidationError.
    assert caught.value.message == message
    assert server.config.jobs_started == started  # rejected before infer ran


# ----------------------------------------------------------------------------------------
# Faults


@pytest.mark.parametrize(
    ("fault", "message", "title"),
    [
        ("quota", QUOTA_MESSAGE, QUOTA_TITLE),
        ("quota_wait", QUOTA_WAIT_MESSAGE, QUOTA_TITLE),
        ("error", ERROR_MESSAGE, "Error"),
    ],
)
def test_faults_raising_gr_error_arrive_as_app_error(
    server: StandinServer, make_client: MakeClient, fault: str, message: str, title: str
) -> None:
    client = make_client(server.url)
    server.config.fault_once = fault
    with pytest.raises(AppError) as caught:
        run(client, *ARGS)
    assert caught.value.message == message
    assert caught.value.title == title
    assert server.config.fault_once is None
    path, _ = run(client, *ARGS)  # fault_once is spent
    assert Path(path).is_file()


def test_error_strikes_halfway(server: StandinServer, make_client: MakeClient) -> None:
    server.config.seconds_per_step = 0.03
    server.config.fault = "error"
    job = make_client(server.url).submit(*ARGS[:7], 10, api_name="/infer")
    statuses = watch(job)
    with pytest.raises(AppError, match="CUDA out of memory"):
        job.result(timeout=30)
    indices = [s.progress_data[0].index for s in statuses if s.progress_data]
    assert indices and max(indices) <= 5


def test_crash_hides_its_text_like_a_default_launch(
    server: StandinServer, make_client: MakeClient
) -> None:
    server.config.fault = "crash"
    with pytest.raises(AppError) as caught:
        run(make_client(server.url), *ARGS)
    assert VERBOSE_ERROR_HINT in caught.value.message
    assert CRASH_MESSAGE not in caught.value.message


def test_crash_with_show_error_shows_the_exception_text(make_client: MakeClient) -> None:
    config = StandinConfig(seconds_per_step=FAST, show_error=True, fault="crash")
    with StandinServer(config) as srv, pytest.raises(AppError) as caught:
        run(make_client(srv.url), *ARGS)
    assert caught.value.message == CRASH_MESSAGE


def test_no_image(server: StandinServer, make_client: MakeClient) -> None:
    server.config.fault_once = "no_image"
    assert run(make_client(server.url), *ARGS) == (None, 1234)


def test_die_refused_in_process(server: StandinServer, make_client: MakeClient) -> None:
    server.config.fault_once = "die"
    with pytest.raises(AppError, match=VERBOSE_ERROR_HINT):
        run(make_client(server.url), *ARGS)


@contextlib.contextmanager
def _spawned(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m sd35.standin`` with ``args``: the process and its URL; killed at the end
    if it is still running."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sd35.standin", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip() if proc.stdout else ""
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"no URL from the stand-in: {url!r} {proc.communicate()[1]}")
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_die_in_a_subprocess_fails_the_job_instead_of_hanging(make_client: MakeClient) -> None:
    with _spawned("--fault", "die", "--seconds-per-step", "0.01") as (proc, url):
        job = make_client(url).submit(*ARGS[:7], 20, api_name="/infer")
        started = time.monotonic()
        # gradio_client reports a dropped stream as a cancelled future.
        with pytest.raises(concurrent.futures.CancelledError):
            job.result(timeout=30)
        assert time.monotonic() - started < 20
        status = job.status()
        assert status.code == Status.FINISHED and status.success is False  # not CANCELLED
        assert proc.wait(timeout=10) == 3


def test_cli_serves_and_exits_cleanly_on_sigterm(make_client: MakeClient) -> None:
    with _spawned("--seconds-per-step", "0.001", "--previews", "--api-name", "infer") as spawned:
        proc, url = spawned
        path, seed = run(make_client(url), *ARGS)
        assert seed == 1234 and Path(path).is_file()
        proc.terminate()
        assert proc.wait(timeout=15) == 0


# ----------------------------------------------------------------------------------------
# Queue


def test_slow_queue_shows_rank_then_full_queue_answers_503(make_client: MakeClient) -> None:
    config = StandinConfig(seconds_per_step=FAST, concurrency=1, max_queue_size=1, queue_hold=30)
    with StandinServer(config) as srv:
        running = make_client(srv.url).submit(*ARGS, api_name="/infer")
        wait_for(lambda: config.jobs_started == 1)
        waiting = make_client(srv.url).submit(*ARGS, api_name="/infer")
        wait_for(lambda: waiting.status().code == Status.IN_QUEUE)
        status = waiting.status()
        assert status.rank == 0 and status.queue_size == 1
        with pytest.raises(QueueError, match="Queue is full"):
            make_client(srv.url).submit(*ARGS, api_name="/infer").result(timeout=30)
        assert config.jobs_started == 1
    for job in (running, waiting):  # the server went away under them: they fail, not hang
        with pytest.raises(Exception):  # noqa: B017 (gradio_client's type varies)
            job.result(timeout=30)


def test_concurrency_two_runs_jobs_side_by_side(make_client: MakeClient) -> None:
    config = StandinConfig(seconds_per_step=FAST, concurrency=2, queue_hold=30)
    with StandinServer(config) as srv:
        jobs = [
            make_client(srv.url).submit(ARGS[0], "", seed, *ARGS[3:], api_name="/infer")
            for seed in (1, 2)
        ]
        # Both are inside infer at once (each holds for 30 s): two slots, no queueing.
        wait_for(lambda: config.jobs_started == 2)
    for job in jobs:  # stopping the server aborts them
        with pytest.raises(Exception):  # noqa: B017 (gradio_client's type varies)
            job.result(timeout=30)


# ----------------------------------------------------------------------------------------
# Generator mode (previews)


def test_generator_mode_yields_previews_before_the_final(
    server: StandinServer, preview_server: StandinServer, make_client: MakeClient
) -> None:
    job = make_client(preview_server.url).submit(*ARGS[:7], 8, api_name="/infer")
    final, _ = job.result(timeout=30)
    outputs = job.outputs()
    # preview_every=2 over 8 steps: after steps 2, 4 and 6, then the final image.
    assert len(outputs) == 4
    assert all(s == 1234 for _, s in outputs)
    assert outputs[-1][0] == final
    frames = [Path(p).read_bytes() for p, _ in outputs]
    assert len(set(frames)) == 4
    # The final frame is the picture returning mode paints for the same request.
    returned, _ = run(make_client(server.url), *ARGS[:7], 8)
    assert Path(returned).read_bytes() == frames[-1]


def test_generator_mode_always_sends_one_preview(
    preview_server: StandinServer, make_client: MakeClient
) -> None:
    job = make_client(preview_server.url).submit(*ARGS[:7], 1, api_name="/infer")
    job.result(timeout=30)
    assert len(job.outputs()) == 2


def test_preview_schedule() -> None:
    assert _preview_steps(40, 4) == set(range(4, 40, 4))
    assert _preview_steps(8, 2) == {2, 4, 6}
    assert _preview_steps(3, 4) == {1}
    assert _preview_steps(1, 4) == {1}
    assert _preview_steps(5, 0) == {1, 2, 3, 4}


def test_cancelling_a_generator_job_stops_it(
    preview_server: StandinServer, make_client: MakeClient
) -> None:
    config = preview_server.config
    config.seconds_per_step = 0.02
    finished, cancelled, ended = config.jobs_finished, config.jobs_cancelled, config.jobs_ended
    job = make_client(preview_server.url).submit(*ARGS[:7], 50, api_name="/infer")
    wait_for(lambda: len(job.outputs()) >= 1)
    assert job.cancel()
    # Racy in gradio_client: CancelledError, or KeyError for the empty completion message.
    with pytest.raises((concurrent.futures.CancelledError, KeyError)):
        job.result(timeout=30)
    assert job.status().code == Status.CANCELLED
    config.wait_ended(ended + 1)
    assert config.jobs_cancelled == cancelled + 1
    assert config.jobs_finished == finished
    assert len(job.outputs()) < 25


# ----------------------------------------------------------------------------------------
# What the stand-in records


def test_token_arrives_as_bearer_header(server: StandinServer, make_client: MakeClient) -> None:
    run(make_client(server.url, token="hf_test_standin_token"), *ARGS)
    headers = server.config.seen_headers[-1]
    assert headers["x-hf-authorization"] == "Bearer hf_test_standin_token"
    assert "gradio_client" in headers["user-agent"]


def test_inputs_are_recorded(server: StandinServer, make_client: MakeClient) -> None:
    run(make_client(server.url), *ARGS)
    assert server.config.seen_inputs[-1] == dict(zip(INPUT_ORDER, ARGS, strict=True))


# ----------------------------------------------------------------------------------------
# Raw HTTP (the form the original provider used)


def test_raw_http_call_route(preview_server: StandinServer) -> None:
    with httpx.Client(base_url=preview_server.url, trust_env=False, timeout=30) as http:
        posted = http.post("gradio_api/call/infer", json={"data": [*ARGS[:7], 4]})
        event_id = posted.json()["event_id"]
        events = [
            line.removeprefix("event: ")
            for line in http.get(f"gradio_api/call/infer/{event_id}").text.splitlines()
            if line.startswith("event: ")
        ]
    assert events[0] == "generating" and events[-1] == "complete"


# ----------------------------------------------------------------------------------------
# Painting and serving


def test_paint_image_is_deterministic_and_fast() -> None:
    args = ("a lighthouse", "blurry", 7, 1024, 1024, 4.5)
    assert paint_image(*args).tobytes() == paint_image(*args).tobytes()
    assert (
        paint_image(*args).tobytes()
        != paint_image("a lighthouse", "", 7, 1024, 1024, 4.5).tobytes()
    )
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        paint_image(*args)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.1
    assert paint_image("ёлка 🎄", None, 1, 512, 768, 0.0).size == (512, 768)


def test_servers_run_side_by_side_and_stop_frees_the_port(make_client: MakeClient) -> None:
    with StandinServer(StandinConfig(seconds_per_step=FAST)) as one:
        with StandinServer(StandinConfig(seconds_per_step=FAST)) as two:
            assert one.url != two.url
            for srv in (one, two):
                assert run(make_client(srv.url), *ARGS)[1] == 1234
        port = one.port
    assert port is not None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError):
        _ = one.url
