"""Every remote failure, through the studio app: one specific message, the app keeps serving,
and nothing stored is lost."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from harness import closed_port, wait_for_http
from sd35.standin import StandinConfig, StandinServer
from tests.studio_support import generate_args, launch_studio


def assert_still_serving(client: Client, running) -> None:
    before = running.studio.store.count()
    result = client.predict(*generate_args("after the fault"), api_name="/generate")
    assert result[1].startswith("✅")
    assert running.studio.store.count() == before + 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("quota", "exceeded your GPU quota"),
        ("quota_wait", "You can try again at"),
        ("error", "CUDA out of memory"),
        ("crash", "did not say why"),
        ("no_image", "sent no image"),
    ],
)
def test_space_faults_show_their_message_and_lose_nothing(
    fault, message, app, preview_space
) -> None:
    client = Client(app.url, verbose=False)
    client.predict(*generate_args("kept safe"), api_name="/generate")
    preview_space.config.fault_once = fault
    with pytest.raises(AppError, match=message) as caught:
        client.predict(*generate_args("this one fails"), api_name="/generate")
    assert "Traceback" not in caught.value.message and "<a" not in caught.value.message
    assert app.studio.store.count() == 1  # the earlier image is still there
    assert_still_serving(client, app)


def test_renamed_endpoint(tmp_path) -> None:
    with StandinServer(StandinConfig(api_name="generate")) as renamed:
        running = launch_studio(renamed.url, tmp_path / "outputs")
        try:
            with pytest.raises(AppError, match="no /infer endpoint"):
                Client(running.url, verbose=False).predict(
                    *generate_args("x"), api_name="/generate"
                )
        finally:
            running.close()


def test_proxy_down(preview_space, tmp_path) -> None:
    running = launch_studio(
        preview_space.url, tmp_path / "outputs", proxy=f"http://127.0.0.1:{closed_port()}"
    )
    try:
        with pytest.raises(AppError, match="through the proxy"):
            Client(running.url, verbose=False).predict(*generate_args("x"), api_name="/generate")
    finally:
        running.close()


def test_space_dying_mid_stream_then_coming_back(tmp_path) -> None:
    port = closed_port()
    command = [sys.executable, "-m", "sd35.standin", "--port", str(port), "--previews"]
    process = subprocess.Popen([*command, "--fault", "die"], stderr=subprocess.DEVNULL)
    running = launch_studio(f"http://127.0.0.1:{port}/", tmp_path / "outputs")
    try:
        client = Client(running.url, verbose=False)
        wait_for_http(f"http://127.0.0.1:{port}/config", timeout=20)
        with pytest.raises(AppError, match="dropped before the image arrived"):
            client.predict(*generate_args("x", steps=20), api_name="/generate")
        process.wait(timeout=10)
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)  # the Space restarts
        wait_for_http(f"http://127.0.0.1:{port}/config", timeout=20)
        assert_still_serving(client, running)
    finally:
        process.kill()
        process.wait()
        running.close()


def test_slow_queue_shows_the_position(tmp_path) -> None:
    config = StandinConfig(seconds_per_step=0.05, concurrency=1, queue_hold=1.0, previews=True)
    with StandinServer(config) as slow:
        running = launch_studio(slow.url, tmp_path / "outputs")
        try:
            first = Client(running.url, verbose=False).submit(
                *generate_args("first"), api_name="/generate"
            )
            time.sleep(0.5)
            second = Client(running.url, verbose=False).submit(
                *generate_args("second"), api_name="/generate"
            )
            assert first.result(timeout=60)[1].startswith("✅")
            assert second.result(timeout=60)[1].startswith("✅")
            lines = [o[1] for o in second.outputs() if isinstance(o[1], str)]
            # Gradio counts the waiting line only: next in line is position 1.
            waiting = [line for line in lines if "Waiting in the Space's queue" in line]
            assert waiting and "position 1" in waiting[0], lines
            assert lines.index(waiting[0]) < next(i for i, x in enumerate(lines) if "Step" in x)
        finally:
            running.close()
