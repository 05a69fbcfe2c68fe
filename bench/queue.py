"""The job queue (``sd35.jobs``, ``sd35.scheduler``): what it costs.

    python -m bench --only queue [--quick]

* **Queue vs direct**: time to the final image (saved in the gallery) for a one-second job on
  the stand-in Space (20 steps of 50 ms, previews on), through the queue (store the job, the
  scheduler starts it, the page's ``follow`` sees it done) and through ``Studio.run`` directly
  (the path before the queue), alternating, in this process. Target: ≤ 1.05×.
* **Adding 1,000 jobs**: ``Scheduler.submit`` of one job at a time into the gallery's file
  (each a committed transaction, with the per-user limit check). Target: median ≤ 5 ms.
* **The page with 1,000 queued jobs**: ``app.py`` on a folder holding 1,000 queued jobs (the
  queue paused, so none runs), Chromium opens it: navigation start → the Queue panel listing
  them. Target: ≤ 1 s.
* **Memory**: the server's VmRSS after a page load, 1,000 queued jobs vs none. Target: within
  20 MB.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import median, progress, rss_mib
from bench.report import Section, Table, Target, fmt_ms, fmt_ratio, fmt_s
from bench.servers import StandinOptions, start_app, start_standin
from harness import chromium, closed_port, stop_process

JOBS = 1000


def _request(prompt: str, steps: int = 20) -> Any:
    from sd35.params import GenerationRequest

    return GenerationRequest(prompt, width=512, height=512, num_inference_steps=steps)


def queue_vs_direct(work: Path, runs: int) -> tuple[list[float], list[float]]:
    """Seconds to the saved image, through the queue and directly, alternating."""
    from sd35.backends.config import space_backend
    from sd35.gallery import SQLiteGalleryStore
    from sd35.jobs import JobStore, image_finder
    from sd35.queue_panel import follow
    from sd35.scheduler import Scheduler
    from sd35.space_client import SpaceClient
    from sd35.studio import Saved, Studio

    standin, url = start_standin(StandinOptions(seconds_per_step=0.05, concurrency=2), work)
    client = SpaceClient(url, download_dir=work / "downloads")
    studio = Studio(client, SQLiteGalleryStore(work / "outputs"))
    store = JobStore.for_gallery(studio.store)
    scheduler = Scheduler(
        store,
        [space_backend(client)],
        lambda job, backend: studio.run(job.request, job.owner, backend=backend, job_id=job.id),
        concurrency=1,
    )
    studio.use_queue(scheduler).start(find_image=image_finder(studio.store.index_path))

    async def direct(prompt: str) -> float:
        began = time.perf_counter()
        async for event in studio.run(_request(prompt)):
            if isinstance(event, Saved):
                return time.perf_counter() - began
        raise RuntimeError("no image")

    async def queued(prompt: str) -> float:
        began = time.perf_counter()
        async for _index, _event in follow(studio, _request(prompt), 1, None):
            pass
        [job] = store.list(None, limit=1)
        if job.state != "done":
            raise RuntimeError(f"the job ended {job.state}")
        return time.perf_counter() - began

    direct_s: list[float] = []
    queue_s: list[float] = []
    try:
        asyncio.run(direct("warm-up"))
        for run in range(runs):
            if run % 2:
                direct_s.append(asyncio.run(direct(f"direct {run}")))
                queue_s.append(asyncio.run(queued(f"queue {run}")))
            else:
                queue_s.append(asyncio.run(queued(f"queue {run}")))
                direct_s.append(asyncio.run(direct(f"direct {run}")))
            progress(f"  run {run + 1}: queue {queue_s[-1]:.3f} s, direct {direct_s[-1]:.3f} s")
    finally:
        scheduler.stop()
        client.close()
        store.close()
        stop_process(standin)
    return queue_s, direct_s


def add_jobs(folder: Path, count: int) -> list[float]:
    """Seconds per ``submit`` of one job, ``count`` times, into ``folder``'s gallery file; the
    queue is left paused so nothing runs."""
    from sd35.backends.config import space_backend
    from sd35.gallery import SQLiteGalleryStore
    from sd35.jobs import JobStore
    from sd35.scheduler import Scheduler
    from sd35.space_client import SpaceClient

    gallery = SQLiteGalleryStore(folder)
    store = JobStore.for_gallery(gallery)
    store.set_paused(None, True)
    client = SpaceClient(f"http://127.0.0.1:{closed_port()}/")
    scheduler = Scheduler(store, [space_backend(client)], None, max_queue=count)  # type: ignore[arg-type]
    times = []
    for index in range(count):
        began = time.perf_counter()
        scheduler.submit([_request(f"queued job {index}, a lighthouse")], owner=None, source="api")
        times.append(time.perf_counter() - began)
    store.close()
    gallery.close()
    return times


PANEL_JS = "() => document.querySelector('#queue-root')?.dataset.active === '%d'"


def page_and_memory(work: Path, folder: Path, count: int, browser: Any, loads: int) -> dict:
    """Start the app on ``folder``, open its page ``loads`` times; open times and VmRSS."""
    space = f"http://127.0.0.1:{closed_port()}/"
    process, url = start_app(space, work, "--max-queue", str(JOBS + 10), output_dir=folder)
    try:
        opens = []
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        try:
            for _ in range(loads):
                page = context.new_page()
                page.goto(url)
                # Gradio mounts a tab's content when it is first shown: open the Queue tab
                # as soon as its button is there.
                page.get_by_role("tab", name="Queue").click(timeout=60_000)
                page.wait_for_function(PANEL_JS % count, timeout=60_000)
                opens.append(page.evaluate("() => performance.now()") / 1000)
                page.close()
        finally:
            context.close()
        time.sleep(1.0)
        return {"opens": opens, "rss": rss_mib(process.pid)}
    finally:
        stop_process(process)


def run(quick: bool) -> Section:
    began = time.monotonic()
    section = Section("Queue: jobs, scheduler and the Queue panel")
    work = Path(tempfile.mkdtemp(prefix="sd35-bench-queue-"))
    try:
        progress("queue vs direct (one-second jobs)")
        queue_s, direct_s = queue_vs_direct(work, 3 if quick else 9)
        ratio = median(queue_s) / median(direct_s)
        progress(f"adding {JOBS} jobs")
        full = work / "full"
        adds = add_jobs(full, JOBS)
        adds_sorted = sorted(adds)
        empty = work / "empty"
        empty.mkdir()
        loads = 2 if quick else 5
        with chromium() as browser:
            progress("page and memory: empty queue")
            none = page_and_memory(work, empty, 0, browser, loads)
            progress(f"page and memory: {JOBS} queued jobs")
            many = page_and_memory(work, full, JOBS, browser, loads)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    extra = many["rss"] - none["rss"]
    table = Table(["measure", "value"])
    table.add("final image via the queue (median)", fmt_s(median(queue_s)))
    table.add("final image direct, `Studio.run` (median)", fmt_s(median(direct_s)))
    table.add("queue / direct", fmt_ratio(ratio))
    table.add(f"add one job: median of {JOBS}", fmt_ms(median(adds)))
    table.add(f"add one job: 95th percentile of {JOBS}", fmt_ms(adds_sorted[int(0.95 * JOBS)]))
    table.add("page opens, Queue panel filled: empty queue (median)", fmt_s(median(none["opens"])))
    table.add(
        f"page opens, Queue panel filled: {JOBS} queued (median)", fmt_s(median(many["opens"]))
    )
    table.add("server VmRSS after page loads: empty queue", f"{none['rss']:.1f} MiB")
    table.add(f"server VmRSS after page loads: {JOBS} queued", f"{many['rss']:.1f} MiB")
    section.tables.append(table)
    section.targets += [
        Target("queue", "final image via the queue vs direct ≤ 1.05×", "≤ 1.05×",
               fmt_ratio(ratio), ratio <= 1.05),
        Target("queue", f"adding {JOBS} jobs: each add ≤ 5 ms (median)", "≤ 5 ms",
               fmt_ms(median(adds)), median(adds) <= 0.005),
        Target("queue", f"page opens with {JOBS} jobs queued ≤ 1 s", "≤ 1 s",
               fmt_s(median(many["opens"])), median(many["opens"]) <= 1.0),
        Target("queue", f"server memory with {JOBS} queued within 20 MB of an empty queue",
               "≤ 20 MB", f"{extra:+.1f} MiB", extra <= 20),
    ]  # fmt: skip
    section.notes += [
        "Queue vs direct: the same stand-in job (20 steps × 50 ms, previews) run alternately "
        "through `Scheduler` + the page's `follow` and through `Studio.run`; each time runs "
        "until the PNG is saved (and, for the queue, the job is marked done).",
        "Adding: one `Scheduler.submit` (a committed SQLite transaction with the per-user "
        "limit check) per job, into the gallery's `.index.sqlite3` on this machine's disk.",
        "Page: navigation start to the Queue panel listing the jobs (its first "
        f"{50} rows and a count of the rest), the Queue tab clicked as soon as it shows; the "
        "queue paused so none runs.",
    ]
    section.seconds = time.monotonic() - began
    return section


if __name__ == "__main__":
    print(run("--quick" in sys.argv).markdown())
