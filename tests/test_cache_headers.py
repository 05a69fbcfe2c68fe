"""A returning user's page: what never changes under its URL comes from the browser's cache."""

from __future__ import annotations

from PIL import Image

from sd35.cache_headers import cache_control
from sd35.metadata import ImageMetadata

#: Every resource of the page so far: its path, and the bytes it took from the network.
RESOURCES_JS = """() => performance.getEntriesByType('resource').map(
    (entry) => [new URL(entry.name).pathname + new URL(entry.name).search, entry.transferSize])"""


def test_a_second_visit_takes_build_theme_and_thumbnails_from_the_cache(browser, app) -> None:
    app.studio.store.save(Image.new("RGB", (64, 48), "teal"), ImageMetadata("a teal card"))
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        for _visit in ("first", "second"):
            page = context.new_page()
            page.goto(app.url)
            page.locator("#gallery img").first.wait_for(timeout=30000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#gallery img')]"
                ".every((img) => img.complete && img.naturalWidth > 0)",
                timeout=30000,
            )
            resources = page.evaluate(RESOURCES_JS)
            html = page.evaluate("() => performance.getEntriesByType('navigation')[0].transferSize")
            page.close()
        assert html > 0  # the page itself (its config) is always asked for
        unchanging = [
            (path, size)
            for path, size in resources
            if path.startswith(("/assets/", "/theme.css?v=", "/gradio_api/file="))
        ]
        kinds = {path.split("/")[1].split("=")[0].split("?")[0] for path, _ in unchanging}
        assert {"assets", "theme.css", "gradio_api"} <= kinds, unchanging
        assert [path for path, size in unchanging if size > 0] == []
    finally:
        context.close()


def test_only_content_named_urls_are_marked_unchanging() -> None:
    file = "/gradio_api/file=/tmp/gradio/" + "ab" * 32 + "/thumb.webp"
    assert cache_control(file, "") == b"private, max-age=31536000, immutable"
    assert cache_control("/assets/Index-DAx5Uzyn2.js", "") is not None
    assert cache_control("/theme.css", "v=" + "0f" * 32) is not None
    for path, query in [
        ("/", ""),  # the page and its config
        ("/config", ""),
        ("/theme.css", ""),  # not versioned
        ("/gradio_api/run/predict", ""),
        ("/gradio_api/file=/home/user/outputs/2026-12-01/image.png", ""),  # not content-named
        ("/gradio_api/queue/data", "session_hash=x"),
    ]:
        assert cache_control(path, query) is None, path
