"""The page with several backends: the panel beside the form names each one and which can
bill, a job can be pinned through the page's own endpoint, and "Use these settings" brings
back the backend an image was made on, with the form's limits following it."""

from __future__ import annotations

import pytest
from gradio_client import Client

from sd35.backends import choose_backends
from tests import inference_support
from tests.studio_support import generate_args, launch_studio, open_page

hub_online = inference_support.hub_online
inference = inference_support.inference


@pytest.mark.browser
def test_the_backend_panel_pins_and_restores(browser, preview_space, inference, tmp_path) -> None:
    space_name, paid = f"space:{preview_space.url}", f"endpoint:{inference.url}"
    choice = choose_backends([(space_name, False), (paid, False)], env={})
    running = launch_studio(preview_space.url, tmp_path / "outputs", backends=choice)
    try:
        client = Client(running.url, verbose=False, download_files=str(tmp_path / "dl"))
        client.predict(*generate_args("on the first backend"), api_name="/generate")
        client.predict(*generate_args("pinned to the paid one"), paid, api_name="/generate")
        made = {i.meta.prompt: i.meta.backend for i in running.studio.store.list().items}
        assert made == {"on the first backend": space_name, "pinned to the paid one": paid}

        page = open_page(browser, running.url)
        panel = page.locator("#backend-states")
        panel.wait_for()
        assert space_name in panel.inner_text() and paid in panel.inner_text()
        assert "bills your account" in panel.inner_text()
        page.wait_for_function(
            "() => document.querySelector('#gallery')?.innerText.includes('pinned to the paid')",
            timeout=20000,
        )
        page.locator("#gallery").locator("button.thumbnail-item, .thumbnail-item").first.click()
        page.locator("#use-settings").click()
        page.wait_for_function(
            f"() => document.querySelector('#backend-choice input')?.value === {paid!r}",
            timeout=10000,
        )
        # The form's limits follow the pinned backend (the Inference bounds go to 1536).
        page.wait_for_function(
            "() => document.querySelector('#width input[type=range]')?.max === '1536'",
            timeout=10000,
        )
        page.close()
    finally:
        running.close()
