"""How the gallery scales: the store, the app's start and the page with 0, 1,000 and 10,000
stored images, and the server's resident memory.

    python -m bench.gallery_scale [--quick] [SIZE ...]      # default 0 1000 10000

For each size a child process fills a folder with small (64x64) but real PNGs with full
metadata, spread over 30 day folders, written directly (not fsynced) and then indexed by the
store's own recovery path, which is the bulk path: a first open finds PNGs without index rows
and indexes them in one transaction. The newest 48 get their thumbnails, as images saved by the
app have. The child then times the store itself (open, list, search, …; as the first version
of this script did) and hands the folder over.

Then ``python app.py --output-dir <folder>`` starts (pointed at a closed loopback port, so it
never touches the network) and Chromium opens its page: the time runs from navigation start to
the first gallery page on screen (the label says "Page 1 of …" and every thumbnail of the page
has loaded). The server's resident memory (VmRSS) is read after those page loads and compared
with the empty gallery's.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bench.common import median, progress, rss_mib, section_main
from bench.report import Section, Table, Target, fmt_s, verdict
from bench.servers import nowhere, run_module, spawn_app
from harness import chromium, stop_process, wait_for_http
from sd35.ui import PAGE_SIZE

WORDS = ["cat", "dog", "lighthouse", "forest", "neon", "city", "portrait", "river", "castle", "bot"]
T = TypeVar("T")


# --- in the child: fill and time the store ----------------------------------------------------


def fill(root: Path, count: int) -> None:
    """``count`` small PNGs with metadata, as the app would have saved them over 30 days."""
    from PIL import Image

    from sd35.image_files import write_png
    from sd35.metadata import ImageMetadata

    start = datetime.now() - timedelta(days=30)
    step = timedelta(days=30) / max(count, 1)
    for i in range(count):
        stamp = start + step * i
        image_id = f"{stamp:%Y%m%d-%H%M%S-%f}-{i:06x}"
        day = root / f"{stamp:%Y-%m-%d}"
        day.mkdir(parents=True, exist_ok=True)
        prompt = f"{WORDS[i % 10]} number {i}, {WORDS[(i * 7) % 10]} in the rain"
        meta = ImageMetadata(prompt=prompt, seed=i, extra={"user": ["alice", "bob"][i % 2]})
        picture = Image.new("RGB", (64, 64), (i % 256, (i * 3) % 256, (i * 7) % 256))
        write_png(picture, day / f"{image_id}.png", meta, durable=False)


def timed(action: Callable[[], T]) -> tuple[T, float]:
    """The result of ``action()`` and how long it took, in milliseconds."""
    started = time.perf_counter()
    result = action()
    return result, (time.perf_counter() - started) * 1000


def child(root: Path, count: int) -> dict[str, float]:
    """Fill ``root`` with ``count`` images and time the store on it (runs in a fresh process,
    so that resident memory is not inherited). Leaves the gallery as it found it plus the
    index and the newest 48 thumbnails."""
    from PIL import Image

    from sd35.gallery import SQLiteGalleryStore
    from sd35.metadata import ImageMetadata

    root.mkdir(parents=True, exist_ok=True)
    _, fill_ms = timed(lambda: fill(root, count))
    rss_before = rss_mib()
    store, first_open_ms = timed(lambda: SQLiteGalleryStore(root))
    assert store.count() == count, store.count()
    store.close()
    store, open_ms = timed(lambda: SQLiteGalleryStore(root))
    _, reconcile_ms = timed(store.reconcile)
    page, first_page_ms = timed(lambda: store.list(limit=48))
    assert len(page.items) == min(48, count) and page.total == count
    _, deep_page_ms = timed(lambda: store.list(offset=max(0, count - 48), limit=48))
    _, user_page_ms = timed(lambda: store.list(user="alice", limit=48))
    _, search_ms = timed(lambda: store.list(search="LIGHTHOUSE number 1", limit=48))
    _, history_ms = timed(lambda: store.prompt_history(50))
    rss_after = rss_mib()
    for item in page.items:  # the app writes a thumbnail with every image it saves
        store.ensure_thumbnail(item.id)
    saves = 20
    saved, save_ms = timed(
        lambda: [store.save(Image.new("RGB", (64, 64)), ImageMetadata("x")) for _ in range(saves)]
    )
    for image in saved:  # back to exactly `count` images
        store.delete(image.id)
    assert store.count() == count
    store.close()
    return {
        "images": count,
        "fill_s": fill_ms / 1000,
        "first_open_ms": first_open_ms,
        "open_ms": open_ms,
        "reconcile_ms": reconcile_ms,
        "first_page_ms": first_page_ms,
        "last_page_ms": deep_page_ms,
        "user_page_ms": user_page_ms,
        "search_ms": search_ms,
        "history_ms": history_ms,
        "save_ms": save_ms / saves,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
    }


STORE_ROWS = [
    ("first open (indexes every PNG)", "first_open_ms", "ms"),
    ("open, index fine", "open_ms", "ms"),
    ("↳ reconcile() alone (listing compare)", "reconcile_ms", "ms"),
    ("list: first page (48)", "first_page_ms", "ms"),
    ("list: last page", "last_page_ms", "ms"),
    ("list: one user's first page", "user_page_ms", "ms"),
    ("search (LIKE, folded)", "search_ms", "ms"),
    ("prompt history (50)", "history_ms", "ms"),
    ("save() 64x64, fsynced, each", "save_ms", "ms"),
    ("VmRSS of the child before open", "rss_before_mib", "MiB"),
    ("VmRSS of the child after open + list", "rss_after_mib", "MiB"),
    ("(writing the PNGs, not fsynced)", "fill_s", "s"),
]


# --- in the parent: the app and its page ------------------------------------------------------

#: Installed before the page's own scripts: stamps (ms since navigation start) when the form
#: appears, when the gallery's label says "Page 1 of … N images" (the load event's answer has
#: been rendered) and when every thumbnail of that page has loaded. It reads ``textContent``,
#: not ``innerText``: ``innerText`` lays the page out, and the observer runs after every batch
#: of changes while Gradio mounts the page, so it slowed the very load it measured.
MILESTONES_JS = """
(() => {
  const marks = window.__marks = {};
  const expected = Number(new URLSearchParams(location.search).get('bench_images') || 0);
  const check = () => {
    const now = performance.now();
    if (!marks.form && document.querySelector('#prompt textarea')) marks.form = now;
    if (!marks.plain && document.querySelector('#col-container button')) marks.plain = now;
    const label = document.querySelector('#page-label');
    const text = label ? label.textContent : '';
    if (!marks.label && text.includes('Page 1 of') && text.includes(` ${expected} images`)) {
      marks.label = now;
    }
    if (marks.label && !marks.gallery) {
      const images = [...document.querySelectorAll('#gallery img')];
      if (images.length >= Math.min(expected, __PAGE_SIZE__)
          && images.every((img) => img.complete && img.naturalWidth > 0)) {
        marks.gallery = now;
      }
    }
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true,
                                                  attributes: true, characterData: true});
  document.addEventListener('load', check, true);  // an <img> finished loading
})();
""".replace("__PAGE_SIZE__", str(PAGE_SIZE))


def measure_app(folder: Path, count: int, loads: int, browser: Any) -> dict[str, Any]:
    """Start the app on ``folder`` and open its page ``loads`` times."""
    began = time.time()
    process, url = spawn_app(nowhere(), folder.parent, output_dir=folder)
    try:
        start_s = wait_for_http(url, timeout=180, process=process) - began
        rss_started = rss_mib(process.pid)
        opens = []
        marks: list[dict[str, float]] = []
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        context.add_init_script(MILESTONES_JS)
        try:
            for _ in range(loads):
                page = context.new_page()
                page.goto(f"{url}?bench_images={count}")
                page.wait_for_function("() => window.__marks.gallery", timeout=60_000)
                found = page.evaluate(
                    """() => {
                      const nav = performance.getEntriesByType('navigation')[0];
                      return {...window.__marks, html: nav.responseEnd,
                              dom: nav.domContentLoadedEventEnd};
                    }"""
                )
                marks.append({key: float(value) / 1000 for key, value in found.items()})
                opens.append(marks[-1]["gallery"])
                page.close()
        finally:
            context.close()
        time.sleep(1.0)
        return {
            "start_s": start_s,
            "opens": opens,
            "marks": marks,
            "rss_started": rss_started,
            "rss_after": rss_mib(process.pid),
        }
    finally:
        stop_process(process)


def measure_plain_page(work: Path, loads: int, browser: Any) -> list[float]:
    """Open a small Gradio page (the stand-in Space's own: a title, a prompt, a button, an
    image and an accordion of sliders) ``loads`` times: when does its form show?"""
    from bench.servers import StandinOptions, start_standin

    standin, url = start_standin(StandinOptions(previews=False), work)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        context.add_init_script(MILESTONES_JS)
        shown = []
        try:
            for _ in range(loads):
                page = context.new_page()
                page.goto(url)
                page.wait_for_function("() => window.__marks.plain", timeout=60_000)
                shown.append(float(page.evaluate("() => window.__marks.plain")) / 1000)
                page.close()
        finally:
            context.close()
        return shown
    finally:
        stop_process(standin)


def run(quick: bool = False, *, sizes: list[int] | None = None) -> Section:
    """Measure every size (always with the empty gallery first, the baseline)."""
    began = time.monotonic()
    wanted = sizes or ([1000] if quick else [1000, 10_000])
    sizes = [0, *[size for size in wanted if size != 0]]
    loads = 1 if quick else 4
    store: dict[int, dict[str, float]] = {}
    app: dict[int, dict[str, Any]] = {}
    work = Path(tempfile.mkdtemp(prefix="sd35-bench-gallery-"))
    try:
        with chromium() as browser:
            for size in sizes:
                folder = work / f"gallery-{size}" / "outputs"
                progress(f"gallery: filling and timing the store with {size:,} images")
                child_args = ("--child", str(folder), str(size))
                output = run_module("bench.gallery_scale", *child_args, timeout=600, check=True)
                store[size] = json.loads(output.stdout.strip().splitlines()[-1])
                progress(f"gallery: the app and its page with {size:,} images")
                app[size] = measure_app(folder, size, loads, browser)
            plain: list[float] = []
            if not quick:
                progress("gallery: a small plain Gradio page, for comparison")
                plain = measure_plain_page(work, loads, browser)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summarise(store, app, plain, loads, time.monotonic() - began)


def later(values: list[T]) -> list[T]:
    """The loads after the first (all of them when there was only one)."""
    return values[1:] or values


def summarise(
    store: dict[int, dict[str, float]],
    app: dict[int, dict[str, Any]],
    plain: list[float],
    loads: int,
    seconds: float,
) -> Section:
    """The app-level table with the two targets, and the store-level table."""
    section = Section("Gallery scale: 0, 1,000 and 10,000 stored images")
    sizes = sorted(app)
    empty = app[0]
    largest = max(sizes)
    open_s = median(later(app[largest]["opens"]))
    extra_rss = app[largest]["rss_after"] - empty["rss_after"]
    met_open = open_s <= 1.0 if largest >= 10_000 else None
    met_rss = extra_rss <= 50 if largest >= 10_000 else None
    targets = Table(["target", "measured", "met?"])
    targets.add(
        f"{largest:,} images: the page opens (first gallery page shown) in ≤ 1 s",
        fmt_s(open_s),
        verdict(met_open),
    )
    targets.add(
        f"{largest:,} images: server resident memory within 50 MB of an empty gallery",
        f"{extra_rss:+.1f} MiB",
        verdict(met_rss),
    )
    section.tables.append(targets)
    table = Table(["", *[f"{size:,} images" for size in sizes]])
    table.add("`app.py` start to first 200", *[fmt_s(app[s]["start_s"]) for s in sizes])
    table.add("page open, first load", *[fmt_s(app[s]["opens"][0]) for s in sizes])
    table.add(
        f"page open, later loads (median of {max(1, loads - 1)})",
        *[fmt_s(median(later(app[s]["opens"]))) for s in sizes],
    )
    for key, label in (
        ("html", "↳ of which: HTML received"),
        ("dom", "↳ DOMContentLoaded"),
        ("form", "↳ the form on screen"),
        ("label", "↳ the load event's answer shown (gallery label)"),
    ):
        table.add(label, *[fmt_s(median([m[key] for m in later(app[s]["marks"])])) for s in sizes])
    table.add(
        "↳ the gallery's own part (form on screen → thumbnails shown)",
        *[fmt_s(median([m["gallery"] - m["form"] for m in later(app[s]["marks"])])) for s in sizes],
    )
    table.add("server VmRSS after start", *[f"{app[s]['rss_started']:.1f} MiB" for s in sizes])
    table.add(
        f"server VmRSS after {loads} page loads", *[f"{app[s]['rss_after']:.1f} MiB" for s in sizes]
    )
    table.add(
        "↳ vs the empty gallery",
        *[f"{app[s]['rss_after'] - empty['rss_after']:+.1f} MiB" for s in sizes],
    )
    section.tables.append(table)
    store_table = Table(["the store alone (in a child process)", *[f"{s:,}" for s in sizes]])
    for label, key, unit in STORE_ROWS:
        store_table.add(label, *[f"{store[s][key]:.1f} {unit}" for s in sizes])
    section.tables.append(store_table)
    if largest >= 10_000:
        section.targets += [
            Target(section.title, "10,000 images open ≤ 1 s", "≤ 1 s", fmt_s(open_s), met_open),
            Target(
                section.title,
                "10,000 images: RSS within 50 MB of empty",
                "≤ +50 MB",
                f"{extra_rss:+.1f} MiB",
                met_rss,
            ),
        ]
    if plain:
        section.notes.append(
            "For comparison, a small plain Gradio page (the stand-in Space's: a prompt, a "
            "button, an image, an accordion of sliders) shows its form "
            f"{median(later(plain)):.3f} s after navigation start on this machine (median of "
            "the later loads): that much of any page open is Gradio's front end starting."
        )
    section.notes += [
        "Page open: from navigation start (`performance.timeOrigin`) to the first gallery page "
        "on screen, in a fresh tab of one browser context (the first load also fetches "
        "Gradio's scripts; later loads have them cached, as a returning user would). The "
        "target is judged on the later loads. The `↳` rows are milestones of the same later "
        "loads, stamped by a MutationObserver installed before Gradio's scripts.",
        "The store rows time `SQLiteGalleryStore` alone in a fresh process; `save()` is "
        "measured with 20 saves that are deleted again afterwards.",
    ]
    section.seconds = seconds
    return section


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # in a child: ``--child DIR SIZE``
        print(json.dumps(child(Path(argv[1]), int(argv[2]))))
        return 0
    return section_main(run, __doc__, argv, ("sizes", {"nargs": "*", "type": int}))


if __name__ == "__main__":
    sys.exit(main())
