"""History in the page: it survives restarts, belongs to its user, and PNG Info reads it back."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client
from PIL import Image

from sd35.metadata import ImageMetadata, write_png
from tests.studio_support import generate_args, launch_studio, open_page, wait_text


@pytest.mark.browser
def test_each_authenticated_user_sees_only_their_own_images(
    browser, preview_space, tmp_path
) -> None:
    users = [("alice", "wonder-1"), ("bob", "builder-2")]
    running = launch_studio(preview_space.url, tmp_path / "outputs", auth=users)
    try:
        prompts = ("alice's teapot", "bob's bicycle")
        for (user, password), prompt in zip(users, prompts, strict=True):
            client = Client(running.url, auth=(user, password), verbose=False)
            client.predict(*generate_args(prompt), api_name="/generate")
        store = running.studio.store
        assert [i.meta.prompt for i in store.list(user="alice").items] == ["alice's teapot"]
        assert [i.meta.prompt for i in store.list(user="bob").items] == ["bob's bicycle"]
        assert store.get(store.list(user="bob").items[0].id, user="alice") is None
        with pytest.raises(ValueError):
            Client(running.url, auth=("alice", "wrong"), verbose=False)
        # Bob logs in to the page: his history holds his image only.
        page = browser.new_page()
        page.goto(running.url)
        page.get_by_label("username").fill("bob")
        page.get_by_label("password").fill("builder-2")
        page.get_by_role("button", name="Login").click()
        page.wait_for_function(
            "() => document.querySelector('#gallery') &&"
            " document.querySelector('#gallery')?.innerText.includes('bicycle')",
            timeout=20000,
        )
        assert "teapot" not in page.locator("#gallery").inner_text()
        page.close()
    finally:
        running.close()


@pytest.mark.browser
def test_history_survives_a_restart(browser, preview_space, tmp_path) -> None:
    outputs = tmp_path / "outputs"
    first = launch_studio(preview_space.url, outputs)
    try:
        result = Client(first.url, verbose=False).predict(
            *generate_args("a harbour before the restart", seed=4242, randomize=False),
            api_name="/generate",
        )
        assert "Seed 4242" in result[2]
    finally:
        first.close()
    second = launch_studio(preview_space.url, outputs)
    try:
        page = open_page(browser, second.url)
        page.wait_for_function(
            "() => document.querySelector('#gallery')?.innerText.includes('seed 4242')",
            timeout=20000,
        )
        assert "a harbour before the restart" in page.locator("#gallery").inner_text()
        assert "· 1 image" in page.locator("#page-label").inner_text()
        page.close()
    finally:
        second.close()


@pytest.mark.browser
def test_png_info_reads_a_png_and_sends_it_to_the_form(browser, app, tmp_path) -> None:
    meta = ImageMetadata(
        prompt="a lantern, glowing: warm", negative_prompt="blurry", seed=31337, width=768
    )
    png = write_png(Image.new("RGB", (64, 64), "orange"), tmp_path / "in.png", meta)
    page = open_page(browser, app.url)
    page.get_by_role("tab", name="PNG Info").click()
    page.locator("input[type=file]").last.set_input_files(str(Path(png)))
    page.wait_for_function("() => document.body.innerText.includes('Seed: 31337')", timeout=20000)
    page.locator("#send-to-form").click()
    page.wait_for_function(
        "() => document.querySelector('#prompt textarea').value === 'a lantern, glowing: warm'",
        timeout=10000,
    )
    assert page.locator("#negative-prompt textarea").input_value() == "blurry"
    assert page.locator("#seed input").input_value() == "31337"
    page.close()


@pytest.mark.browser
def test_gallery_select_reuse_search_and_delete(browser, app) -> None:
    client = Client(app.url, verbose=False)
    client.predict(*generate_args("a green teapot", seed=11, randomize=False), api_name="/generate")
    client.predict(*generate_args("a blue bicycle", seed=22, randomize=False), api_name="/generate")
    page = open_page(browser, app.url)
    gallery = page.locator("#gallery")
    wait_text(page, "#gallery", "seed 22", timeout=20000)
    assert gallery.inner_text().index("seed 22") < gallery.inner_text().index("seed 11")  # newest
    # Select the older image: its parameters appear, and "use these settings" fills the form.
    gallery.locator("button.thumbnail-item, .thumbnail-item").nth(1).click()
    wait_text(page, "body", "a green teapot", "Seed 11", timeout=10000)
    page.locator("#use-settings").click()
    page.wait_for_function(
        "() => document.querySelector('#prompt textarea').value === 'a green teapot'",
        timeout=10000,
    )
    assert page.locator("#seed input").input_value() == "11"
    assert not page.locator("#randomize input").is_checked()
    # Search narrows the gallery to matching prompts.
    page.locator("#search textarea, #search input").first.fill("bicycle")
    page.locator("#search textarea, #search input").first.press("Enter")
    page.wait_for_function(
        "() => !document.querySelector('#gallery')?.innerText.includes('teapot')", timeout=10000
    )
    assert "· 1 image" in page.locator("#page-label").inner_text()
    # Delete asks first, then removes the file and the record.
    gallery.locator("button.thumbnail-item, .thumbnail-item").first.click()
    page.wait_for_function("() => document.body.innerText.includes('Seed 22')", timeout=10000)
    stored = app.studio.store.list(search="bicycle").items[0]
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Yes, delete it").click()
    page.wait_for_function(
        "() => document.querySelector('#page-label')?.innerText.includes('0 images')",
        timeout=10000,
    )
    assert not stored.path.exists()
    assert app.studio.store.count() == 1
    page.close()
