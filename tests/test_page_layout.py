"""The page as a user sees it, in Chromium at 1400×1000 (a laptop) and 390×844 (a phone):
one screen, the whole batch, controls that show the job's state, errors once."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client
from PIL import Image

from sd35.metadata import PARAMETERS_KEY
from tests.browser import screenshot
from tests.studio_support import generate_args, wait_text

LAPTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.browser


def open_at(browser, url: str, viewport: dict[str, int], **options):
    page = browser.new_page(viewport=viewport, **options)
    page.goto(url)
    page.locator("#prompt textarea").wait_for()
    wait_text(page, "#page-label", "Page", timeout=20000)
    return page


def in_viewport(page, selector: str) -> bool:
    """The element's box lies (at least its top 40 px) inside the window, without scrolling."""
    return page.evaluate(
        """(selector) => {
          const box = document.querySelector(selector).getBoundingClientRect();
          return box.width > 0 && box.top >= 0 && box.top + 40 <= innerHeight
                 && box.left >= 0 && box.right <= innerWidth;
        }""",
        selector,
    )


def set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def make(studio, prompt: str, *, width: int = 512, height: int = 512, seed: int = 0) -> None:
    args = list(generate_args(prompt, seed=seed, randomize=not seed))
    args[2], args[3] = width, height
    Client(studio.url, verbose=False).predict(*args, api_name="/generate")


def test_one_screen_at_1400x1000_and_a_batch_of_four_with_seeds(browser, app) -> None:
    make(app, "an older image")
    page = open_at(browser, app.url, LAPTOP)
    # Form, image and History side by side: nothing important below the fold.
    for selector in ("#generate-button", "#prompt", "#output-image", "#gallery", "#page-label"):
        assert in_viewport(page, selector), selector
    assert page.get_by_role("tab", name="History").is_visible()
    assert page.get_by_role("tab", name="Queue").is_visible()
    assert page.get_by_role("tab", name="PNG Info").is_visible()
    page.locator("#prompt textarea").fill("four lighthouses")
    set_number(page, "batch", 4)
    set_number(page, "steps", 6)
    page.locator("#generate-button").click()
    # While it runs Generate says what a click does now (adds to the queue); Stop is enabled.
    page.wait_for_function(
        """() => { const g = document.querySelector('#generate-button');
                   return !g.disabled && g.innerText.includes('Add to queue'); }""",
        timeout=10000,
    )
    assert page.locator("#stop-button").is_enabled()
    wait_text(page, "#run-status", "✅ Done", timeout=60000)
    page.wait_for_function(
        "() => document.querySelectorAll('#batch-strip .thumbnail-item').length === 4",
        timeout=10000,
    )
    seeds = {item.meta.seed for item in app.studio.store.list(search="four").items}
    captions = page.locator("#batch-strip .caption-label").all_inner_texts()
    assert sorted(captions) == sorted(f"Seed {seed}" for seed in seeds) and len(seeds) == 4
    page.wait_for_function(
        "() => document.querySelector('#generate-button').innerText.includes('Generate')",
        timeout=10000,
    )
    assert not page.locator("#stop-button").is_enabled()
    # Click the first of the batch: it is shown large, with its own seed.
    first_seed = captions[0].split()[1]
    page.locator("#batch-strip .thumbnail-item").first.click()
    wait_text(page, "#result-info", f"Seed {first_seed}", timeout=10000)
    screenshot(page, "page-laptop-batch")
    page.close()


def test_phone_has_no_horizontal_scrolling_and_generate_in_reach(browser, app) -> None:
    make(app, "a phone-sized image")
    page = open_at(browser, app.url, PHONE, is_mobile=True, has_touch=True)
    too_wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
              .filter(e => { const b = e.getBoundingClientRect();
                             return b.width > 0 && (b.right > innerWidth + 1 || b.left < -1); })
              .map(e => (e.id || e.className || e.tagName).toString().slice(0, 60))"""
    )
    assert too_wide == []
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert in_viewport(page, "#generate-button")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # down at History
    assert in_viewport(page, "#generate-button")
    page.locator("#prompt textarea").fill("a tiny boat")
    page.locator("#generate-button").click()
    wait_text(page, "#run-status", "✅ Done")
    screenshot(page, "page-phone")
    page.close()


def test_an_error_appears_once_with_its_title_and_the_link(browser, app, preview_space):
    preview_space.config.fault_once = "quota"
    page = open_at(browser, app.url, LAPTOP)
    page.locator("#prompt textarea").fill("a costly cat")
    page.locator("#generate-button").click()
    wait_text(page, "#run-status", "GPU quota exceeded")
    body = page.locator("body").inner_text()
    assert body.count("exceeded your GPU quota") == 1  # no toast repeating it
    assert "Error" not in body.split()  # nor Gradio's bare "Error" badge
    assert page.locator("[data-testid=toast-body]").count() == 0
    link = page.locator("#run-status a", has_text="Create a free account")
    assert link.get_attribute("href").endswith("/join")
    assert "HF_TOKEN" in body and "--token-file" in body
    page.wait_for_function(
        "() => !document.querySelector('#generate-button').disabled", timeout=10000
    )
    assert page.locator("#prompt textarea").input_value() == "a costly cat"
    page.close()


def test_form_mistakes_show_beside_the_field_not_as_toasts(browser, app) -> None:
    page = open_at(browser, app.url, LAPTOP)
    page.locator("#prompt textarea").fill("   ")
    page.locator("#generate-button").click()
    wait_text(page, "#prompt-error", "Please enter a prompt", timeout=15000)
    assert page.locator("[data-testid=toast-body]").count() == 0
    assert "Please enter a prompt" not in page.locator("#run-status").inner_text()
    # The next run clears the mistake.
    page.locator("#prompt textarea").fill("a fixed prompt")
    page.locator("#generate-button").click()
    wait_text(page, "#run-status", "✅ Done")
    assert page.locator("#prompt-error").inner_text().strip() == ""
    page.close()


def checked_ratio(page) -> str:
    return page.evaluate("() => document.querySelector('#aspect-ratio input:checked')?.value ?? ''")


def test_the_ratio_follows_the_sizes_after_every_change(browser, app) -> None:
    make(app, "a wide harbour", width=1024, height=576, seed=77)
    page = open_at(browser, app.url, LAPTOP)
    assert checked_ratio(page) == "1:1"
    page.locator("#gallery .thumbnail-item").first.click()
    wait_text(page, "#details", "Seed 77", timeout=10000)
    page.locator("#use-settings").click()
    page.wait_for_function(
        "() => document.querySelector('#aspect-ratio input:checked')?.value === '16:9'",
        timeout=10000,
    )
    note = page.locator("#form-note").inner_text()
    assert "Changed:" in note and "prompt" in note and "seed 77" in note and "height 576" in note
    assert "width" not in note  # it was 1024 already
    assert in_viewport(page, "#prompt")  # the form is in view
    page.locator("#swap-ratio").click()
    page.wait_for_function(
        "() => document.querySelector('#aspect-ratio input:checked')?.value === '9:16'",
        timeout=10000,
    )
    assert page.locator("#width input[type=number]").input_value() == "576"
    set_number(page, "width", 800)
    page.wait_for_function(
        "() => document.querySelector('#aspect-ratio input:checked')?.value === 'Custom'",
        timeout=10000,
    )
    page.locator("#aspect-ratio label", has_text="4:3").click()
    page.wait_for_function(
        "() => document.querySelector('#width input[type=number]').value === '1024'",
        timeout=10000,
    )
    assert checked_ratio(page) == "4:3"
    page.close()


def test_stop_keeps_the_last_finished_image_and_esc_stops(browser, app, preview_space):
    page = open_at(browser, app.url, LAPTOP)
    page.locator("#prompt textarea").fill("the finished one")
    set_number(page, "steps", 4)
    page.locator("#generate-button").click()
    wait_text(page, "#run-status", "✅ Done")
    finished = page.locator("#output-image img").get_attribute("src")
    assert finished.endswith(".png")
    preview_space.config.seconds_per_step = 0.2
    set_number(page, "steps", 30)
    page.locator("#prompt textarea").press("Control+Enter")
    page.wait_for_function(  # a half-made preview is on screen
        "(src) => document.querySelector('#output-image img')?.src !== src",
        arg=finished,
        timeout=20000,
    )
    assert page.locator("#stop-button").is_enabled()
    page.keyboard.press("Escape")
    wait_text(page, "#run-status", "Stopped", timeout=10000)
    page.wait_for_function(
        "(src) => document.querySelector('#output-image img')?.src === src",
        arg=finished,
        timeout=10000,
    )
    page.wait_for_function(
        "() => !document.querySelector('#generate-button').disabled", timeout=10000
    )
    page.close()


def test_history_letterboxes_marks_stars_and_one_image_does_not_stretch(browser, app):
    make(app, "a single wide image", width=1024, height=576)
    page = open_at(browser, app.url, LAPTOP)
    page.locator("#gallery img").first.wait_for()
    fit = page.evaluate("getComputedStyle(document.querySelector('#gallery img')).objectFit")
    assert fit == "contain"
    widths = page.evaluate(
        """() => [document.querySelector('#gallery .thumbnail-item').getBoundingClientRect().width,
                  document.querySelector('#gallery').getBoundingClientRect().width]"""
    )
    assert widths[0] < widths[1] / 3  # one cell of four, not a full-width banner
    page.locator("#gallery .thumbnail-item").first.click()
    wait_text(page, "#star-button", "☆ Star", timeout=10000)
    page.locator("#star-button").click()
    wait_text(page, "#star-button", "★ Unstar", timeout=10000)
    wait_text(page, "#gallery", "★ a single wide image", timeout=10000)
    assert app.studio.store.list().items[0].starred
    page.close()


def test_png_info_shows_raw_chunks_every_field_and_a_preview(browser, app, tmp_path):
    text = (
        "a castle on a hill\nNegative prompt: fog\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 768x512, "
        "Model hash: abc123ef"
    )
    info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    info.add_text(PARAMETERS_KEY, text)
    info.add_text("Software", "another tool")
    png = tmp_path / "a1111.png"
    Image.new("RGB", (96, 64), "teal").save(png, pnginfo=info)
    page = open_at(browser, app.url, LAPTOP)
    page.get_by_role("tab", name="PNG Info").click()
    page.locator("#png-file input[type=file]").set_input_files(str(Path(png)))
    wait_text(page, "#png-fields", "Model hash", timeout=20000)
    fields = page.locator("#png-fields").inner_text()
    assert "Sampler: Euler a" in fields and "Model hash: abc123ef" in fields
    raw = page.locator("#png-raw").inner_text()
    assert "Sampler: Euler a, CFG scale: 7" in raw and "another tool" in raw
    page.locator("#png-preview img").wait_for()
    page.locator("#send-to-form").click()
    page.wait_for_function(
        "() => document.querySelector('#prompt textarea').value === 'a castle on a hill'",
        timeout=10000,
    )
    wait_text(page, "#form-note", "from the PNG", timeout=10000)
    page.wait_for_function(  # the ratio follows the new sizes (768×512) once they are in
        "() => document.querySelector('#aspect-ratio input:checked')?.value === '3:2'",
        timeout=10000,
    )
    page.close()


def test_dark_mode_follows_the_system_and_the_toggle(browser, app) -> None:
    page = open_at(browser, app.url, LAPTOP, color_scheme="dark")
    assert page.evaluate("document.body.classList.contains('dark')")
    page.locator("#theme-toggle").click()
    page.wait_for_function("() => !document.body.classList.contains('dark')", timeout=5000)
    page.close()
    light = open_at(browser, app.url, LAPTOP, color_scheme="light")
    assert not light.evaluate("document.body.classList.contains('dark')")
    light.close()
