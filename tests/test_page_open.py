"""What the page loads when it opens (issue 17: page open ≤ 1 s): History's first page and the
recent prompts at once; the Queue panel only when its tab is opened."""

from __future__ import annotations

from PIL import Image

from sd35.metadata import ImageMetadata
from tests.studio_support import open_page, wait_text


def test_the_page_opens_with_history_and_the_recent_prompts(browser, app) -> None:
    for prompt in ("a teal card", "a red kite"):
        app.studio.store.save(Image.new("RGB", (64, 48), "teal"), ImageMetadata(prompt))
    page = open_page(browser, app.url)
    wait_text(page, "#page-label", "Page 1 of 1 · 2 images")
    page.locator("#prompt-history input").click()
    options = page.locator("ul[role=listbox] li")
    options.filter(has_text="a red kite").wait_for(timeout=10000)
    assert options.filter(has_text="a teal card").count() == 1
    page.locator("#prompt-history input").press("Escape")
    page.close()


def test_the_queue_panel_is_filled_when_its_tab_opens(browser, app) -> None:
    page = open_page(browser, app.url)
    wait_text(page, "#page-label", "Page 1 of 1 · 0 images")
    # Its timer starts with the tab: without the tab's own refresh it would stay a placeholder.
    page.get_by_role("tab", name="Queue").click()
    page.wait_for_function(
        "() => document.querySelector('#queue-root')?.dataset.active === '0'", timeout=10000
    )
    page.close()
