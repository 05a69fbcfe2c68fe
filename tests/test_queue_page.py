"""The Queue panel in Chromium: Generate adds jobs while others wait, a job waiting for the GPU
quota shows a live countdown with Try now, and jobs can be paused, moved, cancelled, retried."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sd35.server import RunningStudio
from sd35.standin import StandinConfig, StandinServer
from tests.studio_support import launch_studio, open_page

pytestmark = pytest.mark.browser


@pytest.fixture
def quota_app(tmp_path) -> Iterator[tuple[RunningStudio, StandinConfig]]:
    """A studio whose Space refuses the first call for GPU quota, naming a wait of 5 minutes."""
    config = StandinConfig(seconds_per_step=0.01, concurrency=2, fault="quota_wait",
                           quota_retry_in="0:05:00", quota_lift_calls=1)  # fmt: skip
    with StandinServer(config) as space:
        running = launch_studio(space.url, tmp_path / "outputs")
        yield running, config
        running.close()


def row(page, prompt: str):
    return page.locator("#queue-panel tr.queue-job").filter(
        has=page.locator("td.queue-prompt", has_text=re.compile(f"^{prompt}$"))
    )


def generate(page, prompt: str) -> None:
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#generate-button").click()


def test_queue_panel_countdown_try_now_and_job_actions(browser, quota_app) -> None:
    running, config = quota_app
    page = open_page(browser, running.url)
    page.locator("#steps input[type=number]").fill("4")
    page.locator("#steps input[type=number]").press("Enter")
    generate(page, "first")
    page.wait_for_function(
        "() => document.querySelector('#run-status')?.innerText"
        ".includes('Waiting for GPU quota: next try at')",
        timeout=30000,
    )
    page.get_by_role("tab", name="Queue").click()
    first = row(page, "first")
    first.wait_for(timeout=10000)
    assert first.get_attribute("data-state") == "waiting"
    text = first.locator(".queue-detail").inner_text()
    assert re.search(r"Waiting for GPU quota: next try at \d\d:\d\d, in 0:0[45]:\d\d", text), text
    banner = page.locator("#queue-panel .queue-banner")
    assert "Waiting for GPU quota" in banner.inner_text()
    countdown = first.locator(".queue-countdown")
    before = countdown.inner_text()
    page.wait_for_function(  # the countdown ticks in the page
        """(before) => {
            const span = document.querySelector('#queue-panel tr[data-state=waiting] '
                                                + '.queue-countdown');
            return span && span.innerText !== before;
        }""",
        arg=before,
        timeout=5000,
    )

    # Paused, Generate still adds jobs (in order, behind the waiting one).
    page.locator("#queue-panel button[data-action=pause]").click()
    page.locator("#queue-panel button[data-action=resume]").wait_for(timeout=10000)
    for prompt in ("second", "third"):
        page.get_by_role("tab", name="History").click()
        generate(page, prompt)
        page.get_by_role("tab", name="Queue").click()
        row(page, prompt).wait_for(timeout=10000)
    positions = {p: row(page, p).locator(".queue-position").inner_text()
                 for p in ("first", "second", "third")}  # fmt: skip
    assert positions == {"first": "1", "second": "2", "third": "3"}
    assert "paused" in page.locator("#queue-summary").inner_text()

    row(page, "third").locator("button[data-action=top]").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('#queue-panel tr.queue-job')].some(
            (tr) => tr.innerText.includes('third') &&
                    tr.querySelector('.queue-position').innerText === '1')""",
        timeout=10000,
    )
    row(page, "second").locator("button[data-action=cancel]").click()
    page.locator("#queue-panel tr[data-state=cancelled] button[data-action=retry]").wait_for(
        timeout=10000
    )

    # Resume and Try now: the quota has lifted, so the waiting job runs at once.
    page.locator("#queue-panel button[data-action=resume]").click()
    page.locator("#queue-panel .queue-banner button[data-action=try-now]").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#queue-panel tr[data-state=done]').length === 2",
        timeout=30000,
    )
    assert config.quota_refused == 1
    row(page, "second").locator("button[data-action=retry]").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#queue-panel tr[data-state=done]').length === 3"
        " && document.querySelector('#queue-root').dataset.active === '0'",
        timeout=30000,
    )
    assert running.studio.store.count() == 3
    page.locator("#queue-panel button[data-action=clear]").click()
    page.locator("#queue-panel .queue-empty").wait_for(timeout=10000)
    assert running.studio.store.count() == 3  # clearing the list keeps the images
    page.close()


def test_a_batch_adds_one_job_per_image_and_each_user_sees_their_own(browser, tmp_path):
    config = StandinConfig(seconds_per_step=0.01, concurrency=2)
    with StandinServer(config) as space:
        running = launch_studio(space.url, tmp_path / "outputs", auth=[("ann", "a"), ("bob", "b")])
        try:
            pages = {}
            for user, password in (("ann", "a"), ("bob", "b")):
                context = browser.new_context()
                page = context.new_page()
                page.goto(running.url)
                page.locator("input[type=text]").first.fill(user)
                page.locator("input[type=password]").fill(password)
                page.locator("button:has-text('Login')").click()
                page.locator("#prompt textarea").wait_for(timeout=30000)
                pages[user] = page
            ann = pages["ann"]
            running.studio.scheduler.pause("ann")
            ann.locator("#prompt textarea").fill("ann's batch")
            batch = ann.locator("div.block", has_text="Batch count").locator("input[type=number]")
            batch.fill("3")
            batch.press("Enter")
            ann.locator("#generate-button").click()
            ann.get_by_role("tab", name="Queue").click()
            ann.wait_for_function(
                "() => document.querySelectorAll('#queue-panel tr[data-state=queued]').length"
                " === 3",
                timeout=30000,
            )
            bob = pages["bob"]
            bob.get_by_role("tab", name="Queue").click()
            bob.locator("#queue-panel .queue-empty").wait_for(timeout=10000)
            assert "ann" not in bob.locator("#queue-panel").inner_text()
            running.studio.scheduler.resume("ann")
            ann.wait_for_function(
                "() => document.querySelectorAll('#queue-panel tr[data-state=done]').length === 3",
                timeout=60000,
            )
        finally:
            running.close()
