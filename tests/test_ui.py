"""The studio page: driven through gradio_client, and in a real browser (headless Chromium)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from harness import closed_port, free_port
from sd35.errors import InvalidRequestError, SpaceSleepingError
from sd35.metadata import read_metadata
from sd35.panels import wording
from sd35.panels.form import FormValues
from sd35.params import aspect_ratio_presets
from sd35.space_client import SpaceStatus, quota_error
from sd35.standin import QUOTA_MESSAGE, QUOTA_WAIT_MESSAGE, StandinConfig, StandinServer
from tests.browser import screenshot
from tests.studio_support import generate_args, launch_studio, open_page

# --- the page's words, without a browser -----------------------------------------------------


def test_quota_message_keeps_its_link_the_time_and_how_to_use_a_token() -> None:
    text = wording.error_markdown(quota_error(QUOTA_MESSAGE, has_token=False), space="o/s")
    assert text.startswith("⚠️ **GPU quota exceeded**")
    assert "[Create a free account](https://" in text and "/join)" in text
    assert "`HF_TOKEN`" in text and "`--token-file FILE`" in text
    assert "(https://huggingface.co/spaces/o/s)" in text and "<a" not in text
    waiting = wording.error_markdown(quota_error(QUOTA_WAIT_MESSAGE, has_token=True))
    assert "You can try again at" in waiting and "in 9 min 48 s" in waiting
    assert "HF_TOKEN" not in waiting  # a token is already in use


def test_other_errors_keep_their_title_and_are_escaped() -> None:
    text = wording.error_markdown(SpaceSleepingError("The Space is *asleep* <b>now</b>."))
    assert text.startswith("⚠️ **Space is asleep** — ")
    assert "\\*asleep\\*" in text and "\\<b\\>" in text


def test_form_mistakes_go_beside_their_field() -> None:
    prompt = InvalidRequestError("prompt", "", "Please enter a prompt.")
    assert wording.field_error(prompt) == ("⚠️ Please enter a prompt.", "")
    width = InvalidRequestError("width", 1000, "width = 1000 is out of range.")
    assert wording.field_error(width) == ("", "⚠️ width = 1000 is out of range.")


def test_the_ratio_choice_follows_sizes_with_a_custom_state() -> None:
    presets = aspect_ratio_presets()
    assert wording.ratio_for_size(1024, 1024, presets) == "1:1"
    assert wording.ratio_for_size(1024.0, 576.0, presets) == "16:9"
    assert wording.ratio_for_size(768, 512, presets) == "3:2"  # the ratio, not the preset size
    assert wording.ratio_for_size(800, 1024, presets) == wording.CUSTOM_RATIO
    assert wording.ratio_for_size(None, 512, presets) == wording.CUSTOM_RATIO


def test_the_note_says_what_filling_the_form_changed() -> None:
    before = FormValues("a cat", "", 1024, 1024, 4.5, 40, 3, True).as_dict()
    after = FormValues("a dog", "", 1024.0, 576, 4.5, 28, 9, False).as_dict()
    note = wording.changes_note("the selected image", before, after)
    assert note == (
        "✔ Form filled from the selected image. Changed: prompt, height 576, steps 28, "
        "seed 9, randomize seed off."
    )
    assert "nothing changed" in wording.changes_note("the PNG", after, after)


def test_star_words_and_mark() -> None:
    assert wording.star_label(False) == "☆ Star" and wording.star_label(True) == "★ Unstar"
    assert wording.starred_caption("a cat", True) == "★ a cat"
    assert wording.starred_caption("a cat", False) == "a cat"


def test_an_unreachable_space_suggests_demo_in_terminal_and_page() -> None:
    down = SpaceStatus(False, None, "Could not reach the Space.")
    line = wording.startup_line(down, space="o/s")
    assert line is not None and "--demo" in line and "\n" not in line
    assert wording.startup_line(SpaceStatus(True, 0, None), space="o/s") is None
    assert "--demo" in wording.space_status_line(down, space="o/s", demo=False)
    assert "--demo" not in wording.space_status_line(SpaceStatus(True, 0, None), space="o/s",
                                                     demo=False)  # fmt: skip


def test_start_up_says_once_that_the_space_is_down_and_never_advises_share() -> None:
    port = free_port()
    app = Path(__file__).resolve().parents[1] / "app.py"
    process = subprocess.Popen(
        [sys.executable, str(app), "--port", str(port),
         "--space", f"http://127.0.0.1:{closed_port()}/", "--output-dir", "outputs-test"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=Path(__file__).resolve().parents[1] / "test-artifacts",
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "cannot be reached" in line:
                break
        output = "".join(lines)
        assert sum("cannot be reached" in line for line in lines) == 1, output
        assert "--demo" in output and f"127.0.0.1:{port}" in output
        assert "share=True" not in output and "public link" not in output.lower()
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- through gradio_client ------------------------------------------------------------------


def test_page_comes_up_with_the_space_down(tmp_path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/"
    started = time.monotonic()
    running = launch_studio(dead, tmp_path / "outputs")
    try:
        assert time.monotonic() - started < 30  # it did not wait on the remote
        client = Client(running.url, verbose=False)
        with pytest.raises(AppError, match="Could not reach the Space"):
            client.predict(*generate_args("a cat"), api_name="/generate")
        deadline = time.monotonic() + 20
        while running.studio.status is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running.studio.status is not None and not running.studio.status.reachable
    finally:
        running.close()


def test_generate_endpoint_streams_and_saves(app, preview_space, tmp_path) -> None:
    client = Client(app.url, verbose=False, download_files=str(tmp_path / "dl"))
    job = client.submit(
        *generate_args("a lighthouse", seed=5, randomize=False), api_name="/generate"
    )
    final = job.result(timeout=60)
    outputs = job.outputs()
    statuses = [o[1] for o in outputs if isinstance(o[1], str)]
    assert any("Step" in s for s in statuses)
    image_path, status, info = final[0], final[1], final[2]
    assert status.startswith("✅") and "Seed 5" in info and "512×512" in info
    with Image.open(image_path) as image:
        assert image.format == "PNG" and image.size == (512, 512)
    meta = read_metadata(Path(image_path))
    assert meta is not None and meta.seed == 5 and meta.prompt == "a lighthouse"
    stored = app.studio.store.list()
    assert stored.total == 1 and stored.items[0].meta.seed == 5


def test_remote_errors_reach_api_callers_as_their_message(app, preview_space) -> None:
    preview_space.config.fault_once = "quota"
    client = Client(app.url, verbose=False)
    with pytest.raises(AppError, match="exceeded your GPU quota"):
        client.predict(*generate_args("a cat"), api_name="/generate")
    # Off the Space's 32-pixel grid: the slider lets it through, our validation does not.
    with pytest.raises(AppError, match="width = 1000 is off-step"):
        client.predict("a cat", "", 1000, 512, 4.5, 8, 0, True, 1, api_name="/generate")


# --- in the browser ---------------------------------------------------------------------------


def status_text(page) -> str:
    return page.locator("#run-status").inner_text()


@pytest.mark.browser
def test_ctrl_enter_streams_progress_previews_and_the_final_image(
    browser, app, preview_space
) -> None:
    preview_space.config.seconds_per_step = 0.15
    page = open_page(browser, app.url)
    page.locator("#prompt textarea").fill("a red fox in the snow")
    page.locator("#prompt textarea").press("Control+Enter")
    page.wait_for_function(
        "() => document.querySelector('#run-status')?.innerText.includes('Step')", timeout=20000
    )
    # A preview frame is shown while the job is still running.
    page.wait_for_function(
        """() => document.querySelector('#output-image img') &&
                 !document.querySelector('#run-status')?.innerText.includes('Done')""",
        timeout=20000,
    )
    preview_src = page.locator("#output-image img").get_attribute("src")
    assert preview_src and ".webp" in preview_src  # the Space's preview, not our PNG yet
    page.wait_for_function(
        "() => document.querySelector('#run-status')?.innerText.includes('Done')", timeout=30000
    )
    final_src = page.locator("#output-image img").get_attribute("src")
    assert final_src and final_src.endswith(".png")
    info = page.locator("#result-info").inner_text()
    assert "Seed" in info and "1024×1024" in info
    seed = info.split("Seed ")[1].split(" ")[0]
    page.wait_for_function(  # the gallery refreshes right after the image is stored
        f"() => document.querySelector('#gallery')?.innerText.includes('seed {seed}')",
        timeout=10000,
    )
    assert "a red fox" in page.locator("#gallery").inner_text()
    screenshot(page, "studio-finished")
    page.close()


@pytest.mark.browser
def test_stop_cancels_a_slow_job_and_keeps_the_form(browser, app, preview_space) -> None:
    config = preview_space.config
    config.seconds_per_step = 0.1  # 40 steps: the whole job would take 4 s
    finished = config.jobs_finished
    page = open_page(browser, app.url)
    page.locator("#prompt textarea").fill("a very slow painting")
    page.locator("#generate-button").click()
    page.wait_for_function(
        "() => document.querySelector('#run-status')?.innerText.includes('Step')", timeout=20000
    )
    page.locator("#stop-button").click()
    page.wait_for_function(
        "() => document.querySelector('#run-status')?.innerText.includes('Stopped')", timeout=10000
    )
    assert page.locator("#prompt textarea").input_value() == "a very slow painting"
    time.sleep(40 * 0.1 + 1)  # long enough for the job to have finished, had it run on
    assert config.jobs_finished == finished  # the remote job never ran to the end
    assert "Done" not in status_text(page)
    page.close()


@pytest.mark.browser
def test_quota_error_shows_its_message_and_keeps_the_prompt(browser, app, preview_space):
    preview_space.config.fault_once = "quota"
    page = open_page(browser, app.url)
    page.locator("#prompt textarea").fill("a cat that costs GPU time")
    page.locator("#prompt textarea").press("Control+Enter")
    page.wait_for_function(
        "() => document.querySelector('#run-status')?.innerText.includes('GPU quota')",
        timeout=20000,
    )
    text = status_text(page)
    assert "Create a free account" in text and "<a" not in text and "Traceback" not in text
    assert page.locator("#prompt textarea").input_value() == "a cat that costs GPU time"
    page.close()


@pytest.mark.browser
def test_two_users_do_not_wait_on_each_other(browser, tmp_path) -> None:
    config = StandinConfig(seconds_per_step=0.1, previews=True, concurrency=2)
    with StandinServer(config) as space:
        running = launch_studio(space.url, tmp_path / "outputs")
        try:
            contexts = [browser.new_context() for _ in range(2)]
            pages = []
            for index, context in enumerate(contexts):
                page = context.new_page()
                page.goto(running.url)
                page.locator("#prompt textarea").fill(f"user {index} painting")
                page.locator("#steps input[type=number]").fill("20")
                page.locator("#steps input[type=number]").press("Enter")
                pages.append(page)

            def one_job_time(page) -> float:
                began = time.monotonic()
                page.locator("#generate-button").click()
                page.wait_for_function(
                    "() => document.querySelector('#run-status')?.innerText.includes('Done')",
                    timeout=60000,
                )
                return time.monotonic() - began

            single = one_job_time(pages[0])
            began = time.monotonic()
            for page in pages:
                page.locator("#generate-button").click()
            for page in pages:
                page.wait_for_function(
                    "() => document.querySelectorAll('#gallery img').length >= 1 &&"
                    " document.querySelector('#run-status')?.innerText.includes('Done')",
                    timeout=60000,
                )
            both = time.monotonic() - began
            # Serialised, two jobs would take two job-times; together they take about one.
            assert both < 1.6 * single, (both, single)
            for context in contexts:
                context.close()
        finally:
            running.close()
