"""Helpers for tests that run the studio app on loopback and look at it in Chromium."""

from __future__ import annotations

from pathlib import Path

from harness import free_port
from sd35.params import GenerationRequest
from sd35.server import RunningStudio, ServerOptions, start
from sd35.ui import generate_inputs


def launch_studio(space_url: str, output_dir: Path, **options) -> RunningStudio:
    return start(ServerOptions(port=free_port(), space=space_url, output_dir=output_dir, **options))


def generate_args(prompt: str, *, steps: int = 8, seed: int = 0, randomize: bool = True):
    """Inputs for the page's /generate: a small 512x512 request."""
    request = GenerationRequest(
        prompt, seed=seed, randomize_seed=randomize, width=512, height=512,
        num_inference_steps=steps,
    )  # fmt: skip
    return generate_inputs(request)


def wait_text(page, selector: str, *texts: str, timeout: int = 30000) -> None:
    """Wait until the element's text holds every one of ``texts`` at once."""
    page.wait_for_function(
        "([s, ts]) => ts.every((t) => document.querySelector(s)?.innerText.includes(t))",
        arg=[selector, list(texts)],
        timeout=timeout,
    )


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    page.locator("#prompt textarea").wait_for()
    return page
