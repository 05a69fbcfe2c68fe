"""Concurrency: N = 1, 4, 8 sessions generating at once through the studio app.

    python -m bench.concurrency [--quick] [--rounds N]

The stand-in Space (its own process, previews on, up to 8 jobs at once) and the studio app
(``app.py --concurrency 8``, its own process) run on loopback. Each session is a
``gradio_client.Client`` of its own, connected beforehand; in a round, N of them submit
``/generate`` at the same moment and the total is the time until the last result is back. The
rounds go 1, 4, 8, 1, 4, 8, … so that load on this shared machine hits every N alike; the
figure is the median total of each N as a ratio to the median of one job.

Clients do not download files (``download_files=False``): the app's own work is measured, not
the benchmark's. The CPU seconds the app and the stand-in used in each round are read from
``/proc``; on two cores, when (app + stand-in CPU) / 2 comes near the wall time, the round was
bound by this machine's CPU rather than by waiting.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client

from bench.common import Budget, median, progress, section_main
from bench.report import Section, Table, Target, fmt_ratio, fmt_s, verdict
from bench.servers import StandinOptions, cpu_seconds, start_app, start_standin
from harness import stop_process
from sd35.params import GenerationRequest
from sd35.ui import generate_inputs

SIZES = (1, 4, 8)
SIZE = 512
STEPS = 20


def one_round(clients: list[Client], count: int) -> tuple[float, list[float], list[str]]:
    """``count`` sessions submit at once; returns the total, each job's time, and failures."""
    args = generate_inputs(
        GenerationRequest(
            "a concurrency benchmark", width=SIZE, height=SIZE, num_inference_steps=STEPS
        )
    )
    finished: list[float] = []
    began = time.time()
    jobs = [client.submit(*args, api_name="/generate") for client in clients[:count]]
    for job in jobs:
        job.add_done_callback(lambda _: finished.append(time.time()))
    failures = []
    for job in jobs:
        try:
            result: Any = job.result(timeout=120)
            if not str(result[1]).startswith("✅"):
                failures.append(f"odd status: {result[1]!r}")
        except Exception as error:  # counted and reported
            failures.append(f"{type(error).__name__}: {error}")
    deadline = time.monotonic() + 5
    while len(finished) < count and time.monotonic() < deadline:
        time.sleep(0.001)
    ended = max(finished) if finished else time.time()
    return ended - began, [at - began for at in finished], failures


def run(quick: bool = False, *, rounds: int | None = None) -> Section:
    """Measure; ``quick`` makes it a smoke run of two rounds."""
    began = time.monotonic()
    count = rounds or (1 if quick else 6)
    work = Path(tempfile.mkdtemp(prefix="sd35-bench-concurrency-"))
    totals: dict[int, list[float]] = {n: [] for n in SIZES}
    per_job: dict[int, list[float]] = {n: [] for n in SIZES}
    cpu: dict[int, list[tuple[float, float, float]]] = {n: [] for n in SIZES}
    failures: list[str] = []
    standin = app = None
    try:
        standin, space = start_standin(StandinOptions(concurrency=max(SIZES)), work)
        progress("concurrency: starting the studio app")
        app, studio = start_app(space, work, "--concurrency", str(max(SIZES)))
        # The sessions share one TLS context: gradio_client opens an httpx client per request,
        # and loading the CA bundle for each (~30 ms CPU) would make the load generator, on
        # the same two cores, a bigger consumer than the app it loads.
        tls = httpx.create_ssl_context()
        clients = [
            Client(studio, verbose=False, download_files=False, ssl_verify=tls)
            for _ in range(max(SIZES))
        ]
        try:
            one_round(clients, max(SIZES))  # warm-up: every session's first job
            for index in Budget(count, 50 if quick else 180):
                progress(f"concurrency: round {index + 1}/{count}")
                for size in SIZES:
                    app_cpu, standin_cpu = cpu_seconds(app.pid), cpu_seconds(standin.pid)
                    own_cpu = time.process_time()
                    total, jobs, failed = one_round(clients, size)
                    cpu[size].append(
                        (
                            cpu_seconds(app.pid) - app_cpu,
                            cpu_seconds(standin.pid) - standin_cpu,
                            time.process_time() - own_cpu,
                        )
                    )
                    totals[size].append(total)
                    per_job[size] += jobs
                    failures += failed
                    time.sleep(0.2)
        finally:
            for client in clients:
                client.close()
    finally:
        stop_process(app)
        stop_process(standin)
        shutil.rmtree(work, ignore_errors=True)

    section = Section("Concurrency: N sessions at once through the studio app")
    one = median(totals[1])
    ratio8 = median(totals[8]) / one
    met = ratio8 <= 1.3 if not failures else False
    targets = Table(["target", "measured", "met?"])
    targets.add("8 concurrent sessions ≤ 1.3× one", fmt_ratio(ratio8), verdict(met))
    section.tables.append(targets)
    table = Table(
        [
            "sessions",
            "rounds",
            "total (median)",
            "× one",
            "each job (median)",
            "app CPU",
            "stand-in CPU",
            "clients' CPU",
            "CPU floor",
            "floor × one",
        ]
    )
    cores = len(os.sched_getaffinity(0))
    floors: dict[int, float] = {}
    for size in SIZES:
        app_cpu = median([a for a, _, _ in cpu[size]])
        standin_cpu = median([s for _, s, _ in cpu[size]])
        own_cpu = median([c for _, _, c in cpu[size]])
        floors[size] = (app_cpu + standin_cpu + own_cpu) / cores
        table.add(
            size,
            len(totals[size]),
            fmt_s(median(totals[size])),
            fmt_ratio(median(totals[size]) / one),
            fmt_s(median(per_job[size])),
            fmt_s(app_cpu),
            fmt_s(standin_cpu),
            fmt_s(own_cpu),
            fmt_s(floors[size]),
            fmt_ratio(floors[size] / one),
        )
    section.tables.append(table)
    fixed8 = median([(s + c) / cores for _, s, c in cpu[8]])
    section.targets.append(
        Target(section.title, "8 sessions ≤ 1.3× one", "≤ 1.3×", fmt_ratio(ratio8), met)
    )
    section.notes += [
        f"Each job: {STEPS} steps × 20 ms with a preview every 4, {SIZE}×{SIZE}, random seed; "
        "the app saves every image in its gallery and sends back the gallery's first page. "
        "The stand-in allows 8 jobs at once; the app runs with `--concurrency 8`.",
        "CPU columns: seconds of CPU each process used during one round (user + system, "
        "median): the app, the stand-in, and this benchmark's own sessions (gradio_client). "
        f"`CPU floor` is their sum over the {cores} cores: no round on this machine can be "
        "shorter, however well the app overlaps its jobs; `floor × one` compares it with one "
        "job's total. It includes the app's own CPU, which the app can reduce (see below), and "
        "the stand-in's, which it cannot: the stand-in paints and encodes every frame on these "
        "same cores, where the real Space uses its own GPU. The stand-in and the sessions "
        f"alone need {fixed8:.2f} s per round of 8 ({fixed8 / one:.2f}× one job).",
    ]
    if failures:
        section.notes.append(f"{len(failures)} jobs failed, e.g. {failures[0]}")
    section.seconds = time.monotonic() - began
    return section


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, argv, ("--rounds", {"type": int}))


if __name__ == "__main__":
    sys.exit(main())
