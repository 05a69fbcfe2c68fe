"""Time to first preview and to the final image, six ways, against one stand-in Space.

    python -m bench.latency [--quick] [--runs N] [--size 512] [--steps 20]

The stand-in runs in a process of its own (``bench.standin_probe``) with previews on and a
fixed time per step, and logs the wall-clock moment it emits each frame and the final image
(just before its ``yield``), keyed by Gradio's content hash of the file. The studio app runs in
another process (``python app.py``) pointed at that stand-in, and headless Chromium shows its
page. The six consumers, measured round-robin so that a burst of load on this shared machine
hits all of them alike:

1. ``bare``: ``gradio_client.Client.submit(..., api_name="/infer")`` (a warm client; files are
   downloaded, as by default) — the floor;
2. ``sse``: the seed's approach by hand: one ``POST /gradio_api/call/infer``, then the event
   stream read with ``httpx``, each image downloaded from its URL;
3. ``space_client``: ``sd35.space_client.SpaceClient.generate`` (one client kept, as the app does);
4. ``provider``: ``StabilityAI_SD35Large.create_async_generator`` pointed at the stand-in (its
   final image is the PNG saved in the gallery);
5. ``app_api``: the studio's own ``/generate`` through ``gradio_client`` (the final is the
   gallery PNG);
6. ``page``: the studio page in Chromium: from the click to the frame being visible.

A consumer "has" an image when its bytes are on this machine (a client's download) or, for the
page, when the ``<img>`` showing it has been fetched, decoded, and the next animation frame has
begun. Each arrival is matched to the stand-in's emission by the content hash, so the per-frame
lag (arrival minus emission) needs no assumption about which frame is which.

The page's times come from a MutationObserver on ``#output-image`` that stamps each new ``src``
with ``performance.timeOrigin + performance.now()``, then ``img.decode()`` and one
``requestAnimationFrame``. That clock is the browser's wall clock; its offset from Python's
``time.time()`` is measured (a round trip through ``page.evaluate``, the tightest of 20) and
taken off, and the uncertainty left is printed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from gradio.processing_utils import hash_file
from gradio_client import Client

from bench.common import Budget, median, progress, section_main
from bench.report import Section, Table, Target, fmt_ms, fmt_ratio, fmt_s, verdict
from bench.servers import StandinOptions, start_app, start_standin
from bench.standin_probe import read_emissions
from harness import chromium, stop_process
from sd35.params import GenerationRequest, build_request
from sd35.provider import ImagePreview, ImageResponse, StabilityAI_SD35Large
from sd35.space_client import Preview, Result, SpaceClient
from sd35.ui import generate_inputs

PROMPT = "a lighthouse at dusk, benchmark"
PATHS = ["bare", "sse", "space_client", "provider", "app_api", "page"]
LABELS = {
    "bare": "1. bare gradio_client /infer (floor)",
    "sse": "2. hand-written POST + SSE (seed's way)",
    "space_client": "3. sd35 SpaceClient",
    "provider": "4. sd35 provider",
    "app_api": "5. studio /generate via gradio_client",
    "page": "6. studio page in Chromium",
}


@dataclass
class Settings:
    """The request every consumer makes, and how often."""

    runs: int = 12
    size: int = 512
    steps: int = 20
    seconds_per_step: float = 0.02
    preview_every: int = 4
    budget_seconds: float = 240.0


@dataclass
class Arrival:
    """A consumer got an image: when (``time.time()``), which (content key), and if final."""

    at: float
    key: str | None
    final: bool
    shown_dom: float | None = None  # page only: when the <img> got its src


@dataclass
class Run:
    """One generation as one consumer saw it, with what the stand-in emitted meanwhile."""

    started: float
    arrivals: list[Arrival] = field(default_factory=list)
    emissions: list[tuple[float, str]] = field(default_factory=list)

    @property
    def final_key(self) -> str | None:
        """The content key of the final image: the stand-in's last emission."""
        return self.emissions[-1][1] if self.emissions else None

    def _previews(self) -> list[Arrival]:
        final_key = self.final_key
        return [a for a in self.arrivals if not a.final and a.key != final_key]

    def first_preview(self) -> float:
        times = [a.at for a in self._previews()]
        return min(times) - self.started if times else float("nan")

    def final(self) -> float:
        """Until the consumer's final answer (for the studio: the gallery PNG)."""
        times = [a.at for a in self.arrivals if a.final]
        return min(times) - self.started if times else float("nan")

    def final_pixels(self) -> float:
        """Until the final picture first reached the consumer in any form (a Space that
        streams sends its last frame as an update before the "complete" message)."""
        final_key = self.final_key
        times = [a.at for a in self.arrivals if a.final or a.key == final_key]
        return min(times) - self.started if times else float("nan")

    def preview_lags(self) -> list[float]:
        emitted = {key: at for at, key in self.emissions}
        return [a.at - emitted[a.key] for a in self._previews() if a.key in emitted]

    def dom_lags(self) -> list[float]:
        emitted = {key: at for at, key in self.emissions}
        return [
            a.shown_dom - emitted[a.key]
            for a in self._previews()
            if a.key in emitted and a.shown_dom is not None
        ]

    def final_lag(self) -> float:
        finals = [a.at for a in self.arrivals if a.final]
        if not finals or not self.emissions:
            return float("nan")
        return min(finals) - self.emissions[-1][0]

    def previews_emitted(self) -> int:
        return max(0, len(self.emissions) - 1)


def _key_of_file(path: str | Path | None) -> str | None:
    if not path:
        return None
    try:
        return hash_file(path)
    except OSError:
        return None


def _key_of_url(url: str) -> str | None:
    """The content hash of the file a Gradio file URL serves (``.../file=/tmp/gradio/D/x``):
    the file's own, read from this machine's disk (the studio stages files under random
    folder names, ``sd35.page_files``), else the folder's name (Gradio names it after the
    content)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    marker = "/file="
    if marker not in path:
        return None
    served = Path(path.split(marker, 1)[1])
    return _key_of_file(served) or served.parent.name or None


def _image_of(output: Any) -> str | None:
    value = output[0] if isinstance(output, (list, tuple)) and output else output
    if isinstance(value, dict):
        value = value.get("path")
    return value if isinstance(value, str) and value else None


# --- the consumers ----------------------------------------------------------------------------


class Consumers:
    """Everything that asks for an image, set up once and reused run after run."""

    def __init__(self, settings: Settings, space: str, studio: str, work: Path) -> None:
        self.settings = settings
        self.space = space
        self.studio = studio
        self.work = work
        self.bare = Client(space, verbose=False, download_files=str(work / "bare"))
        self.api = Client(studio, verbose=False, download_files=str(work / "api"))
        self.space_client = SpaceClient(space, download_dir=work / "space-client")
        self.request = build_request(
            PROMPT,
            width=settings.size,
            height=settings.size,
            num_inference_steps=settings.steps,
            randomize_seed=True,
        )

        class LocalProvider(StabilityAI_SD35Large):
            url = space
            output_dir = work / "provider-outputs"

        self.provider = LocalProvider
        self.page: Any = None
        self._loop_thread = concurrent.futures.ThreadPoolExecutor(1, "bench-asyncio")
        self.clock_offset = 0.0
        self.clock_uncertainty = float("nan")

    def _async(self, coroutine: Any) -> None:
        """Run a coroutine to its end on a thread of its own (Playwright's sync API holds an
        event loop in this thread, so ``asyncio.run`` cannot be called here)."""
        self._loop_thread.submit(asyncio.run, coroutine).result(timeout=180)

    def close(self) -> None:
        self._loop_thread.shutdown(wait=True)
        self.bare.close()
        self.api.close()
        self.space_client.close()

    # 1 -------------------------------------------------------------------------------------
    def run_bare(self, run: Run) -> None:
        job = self.bare.submit(*self.request.as_inputs(), api_name="/infer")
        self._follow_job(job, run)

    def _follow_job(self, job: Any, run: Run) -> None:
        """Stamp each new output of a gradio_client job (polled every millisecond, as
        ``Job.__next__`` does), then the result."""
        deadline = time.monotonic() + 120
        seen = 0
        keys: set[str | None] = set()
        pending: list[tuple[float, Any]] = []
        while not job.done():
            outputs = job.outputs()
            while seen < len(outputs):
                pending.append((time.time(), outputs[seen]))
                seen += 1
            if time.monotonic() > deadline:
                job.cancel()
                raise TimeoutError("no result in 120 s")
            time.sleep(0.001)
        result = job.result(timeout=120)
        finished = time.time()
        final_key = _key_of_file(_image_of(result))
        for at, output in pending:
            image = _image_of(output)
            if image is None or image.endswith(".png"):
                continue  # no image in this output, or the gallery PNG (the final)
            key = _key_of_file(image)
            if key is None or key in keys:
                continue  # the same frame again (another output of the update changed)
            keys.add(key)
            run.arrivals.append(Arrival(at, key, final=False))
        run.arrivals.append(Arrival(finished, final_key, final=True))

    # 2 -------------------------------------------------------------------------------------
    def run_sse(self, run: Run) -> None:
        self._async(self._sse(run))

    async def _sse(self, run: Run) -> None:
        """The seed's way: POST the inputs, read the event stream, fetch each image."""
        base = self.space.rstrip("/")
        body = {"data": list(self.request.as_inputs())}
        timeout = httpx.Timeout(120.0)
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.post(f"{base}/gradio_api/call/infer", json=body)
            response.raise_for_status()
            event_id = response.json()["event_id"]
            event = None
            async with http.stream("GET", f"{base}/gradio_api/call/infer/{event_id}") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:].strip()
                    elif line.startswith("data: ") and event in ("generating", "complete"):
                        data = json.loads(line[6:])
                        image = data[0] if isinstance(data, list) and data else None
                        url = image.get("url") if isinstance(image, dict) else None
                        if not url:
                            continue
                        fetched = await http.get(url)
                        fetched.raise_for_status()
                        run.arrivals.append(
                            Arrival(time.time(), _key_of_url(url), final=event == "complete")
                        )
                        if event == "complete":
                            return
                    elif line.startswith("data: ") and event == "error":
                        raise RuntimeError(f"the stand-in reported an error: {line[6:]}")
        raise RuntimeError("the event stream ended without a complete event")

    # 3 -------------------------------------------------------------------------------------
    def run_space_client(self, run: Run) -> None:
        for event in self.space_client.generate(self.request):
            if isinstance(event, Preview):
                run.arrivals.append(Arrival(time.time(), _key_of_file(event.path), final=False))
            elif isinstance(event, Result):
                run.arrivals.append(Arrival(time.time(), _key_of_file(event.path), final=True))

    # 4 -------------------------------------------------------------------------------------
    def run_provider(self, run: Run) -> None:
        self._async(self._provider(run))

    async def _provider(self, run: Run) -> None:
        async for item in self.provider.create_async_generator(
            model="sd-3.5",
            messages=[{"role": "user", "content": PROMPT}],
            width=self.settings.size,
            height=self.settings.size,
            num_inference_steps=self.settings.steps,
            randomize_seed=True,
        ):
            if isinstance(item, ImagePreview):
                run.arrivals.append(Arrival(time.time(), _key_of_file(item.path), final=False))
            elif isinstance(item, ImageResponse):
                run.arrivals.append(Arrival(time.time(), None, final=True))

    # 5 -------------------------------------------------------------------------------------
    def run_app_api(self, run: Run) -> None:
        size, steps = self.settings.size, self.settings.steps
        args = generate_inputs(
            GenerationRequest(PROMPT, width=size, height=size, num_inference_steps=steps)
        )
        job = self.api.submit(*args, api_name="/generate")
        self._follow_job(job, run)

    # 6 -------------------------------------------------------------------------------------
    def open_page(self, browser: Any) -> None:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(self.studio)
        page.locator("#prompt textarea").wait_for(timeout=60_000)
        page.locator("#prompt textarea").fill(PROMPT)
        for element, value in (
            ("#width", self.settings.size),
            ("#height", self.settings.size),
            ("#steps", self.settings.steps),
        ):
            box = page.locator(f"{element} input[type=number]")
            box.fill(str(value))
            box.press("Enter")
        page.evaluate(OBSERVER_JS)
        self.page = page
        self._calibrate()

    def _calibrate(self) -> None:
        """Offset of the browser's ``timeOrigin + now()`` from ``time.time()``."""
        best = (float("inf"), 0.0)
        for _ in range(20):
            before = time.time()
            browser_now = float(self.page.evaluate("() => window.__benchNow()")) / 1000
            after = time.time()
            best = min(best, (after - before, browser_now - (before + after) / 2))
        self.clock_uncertainty = best[0] / 2
        self.clock_offset = best[1]

    def run_page(self, run: Run) -> None:
        page = self.page
        started = float(page.evaluate(CLICK_JS)) / 1000 - self.clock_offset
        run.started = started
        page.wait_for_function(FINAL_SHOWN_JS, timeout=120_000, polling=20)
        events = page.evaluate(
            "() => window.__bench.events.filter(e => e.dom >= window.__bench.start)"
        )
        offset = self.clock_offset
        for event in events:
            if event.get("superseded") or event.get("shown") is None:
                continue
            src = str(event["src"])
            final = ".png" in urllib.parse.unquote(src)
            run.arrivals.append(
                Arrival(
                    event["shown"] / 1000 - offset,
                    None if final else _key_of_url(src),
                    final=final,
                    shown_dom=event["dom"] / 1000 - offset,
                )
            )


OBSERVER_JS = """
() => {
  if (window.__bench) return;
  const now = () => performance.timeOrigin + performance.now();
  window.__benchNow = now;
  const bench = window.__bench = {events: [], start: 0};
  const last = new WeakMap();
  const watch = (img) => {
    const src = img.src || '';
    if (!src || last.get(img) === src) return;
    last.set(img, src);
    const event = {src, dom: now(), shown: null, superseded: false};
    bench.events.push(event);
    const done = () => {
      if (img.src !== src) { event.superseded = true; return; }
      requestAnimationFrame(() => { event.shown = now(); });
    };
    img.decode().then(done, done);
  };
  const root = document.querySelector('#output-image');
  const scan = () => root.querySelectorAll('img').forEach(watch);
  new MutationObserver(scan).observe(root, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['src'],
  });
  scan();
}
"""
CLICK_JS = """
() => {
  window.__bench.start = window.__benchNow();
  document.querySelector('#generate-button').click();
  return window.__bench.start;
}
"""
FINAL_SHOWN_JS = """
() => window.__bench.events.some(
  e => e.dom >= window.__bench.start && decodeURIComponent(e.src).includes('.png')
       && (e.shown !== null || e.superseded))
"""


# --- the measurement --------------------------------------------------------------------------


def measure(settings: Settings) -> tuple[dict[str, list[Run]], dict[str, float]]:
    """Run every consumer ``settings.runs`` times, round-robin, after one warm-up each."""
    work = Path(tempfile.mkdtemp(prefix="sd35-bench-latency-"))
    log = work / "emissions.log"
    standin = app = None
    runs: dict[str, list[Run]] = {name: [] for name in PATHS}
    info: dict[str, float] = {}
    try:
        standin_options = StandinOptions(
            seconds_per_step=settings.seconds_per_step, preview_every=settings.preview_every
        )
        standin, space = start_standin(standin_options, work, emit_log=log)
        progress(f"latency: stand-in at {space}; starting the studio app")
        app, studio = start_app(space, work)
        consumers = Consumers(settings, space, studio, work)
        with contextlib.closing(consumers), chromium() as browser:
            consumers.open_page(browser)
            info["clock_offset"] = consumers.clock_offset
            info["clock_uncertainty"] = consumers.clock_uncertainty
            actions: dict[str, Callable[[Run], None]] = {
                "bare": consumers.run_bare,
                "sse": consumers.run_sse,
                "space_client": consumers.run_space_client,
                "provider": consumers.run_provider,
                "app_api": consumers.run_app_api,
                "page": consumers.run_page,
            }
            offset = 0
            for index in Budget(settings.runs + 1, settings.budget_seconds):
                label = "warm-up" if index == 0 else f"run {index}/{settings.runs}"
                progress(f"latency: {label}")
                for name, action in actions.items():
                    _, offset = read_emissions(log, offset)  # skip anything stray
                    run = Run(started=time.time())
                    action(run)
                    time.sleep(0.05)  # let the stand-in's job wind down before the next
                    run.emissions, offset = read_emissions(log, offset)
                    if index:
                        runs[name].append(run)
    finally:
        stop_process(app)
        stop_process(standin)
        shutil.rmtree(work, ignore_errors=True)
    return runs, info


def summarise(settings: Settings, runs: dict[str, list[Run]], info: dict[str, float]) -> Section:
    """The table of medians and ratios, and the two targets on the page."""
    section = Section("Latency: time to first preview and to the final image")
    table = Table(
        [
            "path",
            "runs",
            "first preview",
            "× (1)",
            "final image",
            "× (1)",
            "final − (1)",
            "final picture first",
            "frames seen",
            "frame lag (median)",
            "lag − (1)",
        ]
    )
    bare_first = median([r.first_preview() for r in runs["bare"]])
    bare_final = median([r.final() for r in runs["bare"]])
    bare_lag = median([lag for r in runs["bare"] for lag in r.preview_lags()])
    stats: dict[str, dict[str, float]] = {}
    for name in PATHS:
        rows = runs[name]
        first = median([r.first_preview() for r in rows])
        final = median([r.final() for r in rows])
        lags = [lag for r in rows for lag in r.preview_lags()]
        lag = median(lags)
        emitted = sum(r.previews_emitted() for r in rows)
        stats[name] = {"first": first, "final": final, "lag": lag}
        table.add(
            LABELS[name],
            len(rows),
            fmt_s(first),
            fmt_ratio(first / bare_first),
            fmt_s(final),
            fmt_ratio(final / bare_final),
            fmt_ms(final - bare_final),
            fmt_s(median([r.final_pixels() for r in rows])),
            f"{len(lags)}/{emitted}",
            fmt_ms(lag),
            fmt_ms(lag - bare_lag),
        )
    section.tables.append(table)

    page = runs["page"]
    dom_lag = median([lag for r in page for lag in r.dom_lags()])
    final_lags = {name: median([r.final_lag() for r in runs[name]]) for name in PATHS}
    breakdown = Table(["path", "final image after the stand-in emitted it (median)"])
    for name in PATHS:
        breakdown.add(LABELS[name], fmt_ms(final_lags[name]))
    section.tables.append(breakdown)

    ratio = stats["page"]["final"] / bare_final
    extra_lag = stats["page"]["lag"] - bare_lag
    targets = Table(["target", "measured", "met?"])
    met_final = ratio <= 1.15 if ratio == ratio else None
    met_lag = extra_lag <= 0.030 if extra_lag == extra_lag else None
    targets.add("page: time to final ≤ 1.15× bare client", fmt_ratio(ratio), verdict(met_final))
    pixels = median([r.final_pixels() for r in runs["page"]]) / bare_final
    targets.add(
        "(for information: the final picture itself on the page, before the PNG swap)",
        fmt_ratio(pixels),
        "",
    )
    targets.add(
        "page: each preview visible ≤ 30 ms after the bare client has it (median)",
        f"{extra_lag * 1000:+.0f} ms",
        verdict(met_lag),
    )
    section.tables.insert(0, targets)
    section.targets += [
        Target(
            section.title, "page time to final ≤ 1.15× bare", "≤ 1.15×", fmt_ratio(ratio), met_final
        ),
        Target(
            section.title,
            "preview visible ≤ 30 ms after bare (median)",
            "≤ +30 ms",
            f"{extra_lag * 1000:+.0f} ms",
            met_lag,
        ),
    ]
    section.notes += [
        f"Stand-in: {settings.steps} steps × {settings.seconds_per_step * 1000:.0f} ms, a preview "
        f"every {settings.preview_every} steps, {settings.size}×{settings.size}, random seed "
        "each run; stand-in, studio app and Chromium each in a process of their own, the "
        "clients (1–5) in the benchmark's process. One warm-up run each is not counted; runs "
        "are interleaved round-robin.",
        "×(1) is the ratio of medians to the bare gradio_client call; `final − (1)` the "
        "difference of medians. Frame lag: from the stand-in writing a frame (just before its "
        "`yield`) to the consumer having its bytes (page: fetched, decoded and the next "
        "animation frame begun), matched by content hash; `frames seen` counts frames that "
        "reached the consumer out of previews emitted.",
        f"Page: the `src` of `#output-image img` changed a median "
        f"{dom_lag * 1000:.0f} ms after the stand-in emitted the frame; fetching and decoding "
        f"it took the rest. Browser clock offset from `time.time()`: "
        f"{info.get('clock_offset', float('nan')) * 1000:+.1f} ms "
        f"(±{info.get('clock_uncertainty', float('nan')) * 1000:.1f} ms), corrected.",
        "`final image` is each consumer's own end: the downloaded result (1–3), the "
        "`ImageResponse` after the PNG is saved in the gallery (4), the `/generate` result and "
        "the page's `<img>` showing the gallery PNG (5, 6). A streaming Space sends its last "
        "frame once more as an update before `complete`, so the final picture itself can "
        "arrive earlier (`final picture first`; the page shows it as a preview, then swaps in "
        "the PNG). The provider builds a new SpaceClient (connect + schema read) per call.",
    ]
    return section


def run(
    quick: bool = False, *, runs: int | None = None, size: int = 512, steps: int = 20
) -> Section:
    """Measure and summarise; ``quick`` is a smoke run of a few runs."""
    started = time.monotonic()
    settings = Settings(
        runs=runs or (1 if quick else 12),
        size=size,
        steps=steps,
        budget_seconds=40 if quick else 240,
    )
    measured, info = measure(settings)
    section = summarise(settings, measured, info)
    section.seconds = time.monotonic() - started
    return section


def main(argv: list[str] | None = None) -> int:
    size, steps = (
        ("--size", {"type": int, "default": 512}),
        ("--steps", {"type": int, "default": 20}),
    )
    return section_main(run, __doc__, argv, ("--runs", {"type": int}), size, steps)


if __name__ == "__main__":
    sys.exit(main())
