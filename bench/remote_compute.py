"""Remote compute: the studio's own cost when the Space's GPU is elsewhere.

    python -m bench.remote_compute [--quick] [--rounds N]

The stand-in runs in remote-compute mode (``--premade``): its final images are made once, so
a job costs it no CPU and is only a sleep of 40 steps × 25 ms; 1024×1024, no previews, as the
official Space. In the same run, N = 1, 4 and 8 sessions at once go (a) straight to the
stand-in with a bare ``gradio_client`` ``/infer`` call and (b) through the studio app's
``/generate`` (``app.py --concurrency 8``: the app downloads the image, saves it as PNG in its
gallery and answers with it). Rounds alternate a/b and 1/4/8 so the machine's other load hits
all alike; each figure is a median over rounds. The app's CPU seconds per round (``/proc``)
divided by the images of the round is its CPU per image.

Then the provider beside the seed's own provider (``bench/provider_race.py``, run by the
bench's interpreter that has g4f: ``bench/requirements.txt``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client

from bench import cpu_floor, png_levels
from bench.common import ROOT, Budget, median, progress, section_main
from bench.report import Section, Table, Target, fmt_ms, fmt_ratio, fmt_s, verdict
from bench.servers import StandinOptions, cpu_seconds, run_module, start_app, start_standin
from harness import stop_process
from sd35.params import GenerationRequest
from sd35.ui import generate_inputs

SIZES = (1, 4, 8)
SIZE = 1024
STEPS = 40
STEP_SECONDS = 0.025
REQUEST = GenerationRequest(
    "a remote compute benchmark", width=SIZE, height=SIZE, num_inference_steps=STEPS
)
#: The interpreter with g4f (see bench/requirements.txt).
BENCH_PYTHON = Path(os.environ.get("SD35_BENCH_PYTHON", ROOT / ".venv-bench" / "bin" / "python"))


def one_round(clients: list[Client], count: int, api_name: str) -> tuple[float, list[str]]:
    """``count`` sessions submit at once; the time until the last result, and failures."""
    args = REQUEST.as_inputs() if api_name == "/infer" else generate_inputs(REQUEST)
    began = time.perf_counter()
    jobs = [client.submit(*args, api_name=api_name) for client in clients[:count]]
    failures = []
    for job in jobs:
        try:
            result: Any = job.result(timeout=120)
            if api_name == "/generate" and not str(result[1]).startswith("✅"):
                failures.append(f"odd status: {result[1]!r}")
        except Exception as error:  # counted and reported
            failures.append(f"{type(error).__name__}: {error}")
    return time.perf_counter() - began, failures


def _sessions(url: str, tls: Any) -> list[Client]:
    return [
        Client(url, verbose=False, download_files=False, ssl_verify=tls) for _ in range(max(SIZES))
    ]


def measure_sessions(space: str, studio: str, app_pid: int, standin_pid: int, rounds: int):
    """Rounds of 1/4/8 sessions, bare and through the studio; per (path, N): totals and CPU."""
    tls = httpx.create_ssl_context()
    paths = {
        "bare": (_sessions(space, tls), "/infer"),
        "studio": (_sessions(studio, tls), "/generate"),
    }
    totals: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    failures: list[str] = []
    try:
        for clients, api in paths.values():  # warm-up: every session's first job
            one_round(clients, max(SIZES), api)
        for index in Budget(rounds, 420):
            progress(f"remote compute: round {index + 1}/{rounds}")
            order = list(paths) if index % 2 == 0 else list(reversed(paths))
            for size in SIZES:
                for name in order:
                    clients, api = paths[name]
                    before = (cpu_seconds(app_pid), cpu_seconds(standin_pid), time.process_time())
                    total, failed = one_round(clients, size, api)
                    after = (cpu_seconds(app_pid), cpu_seconds(standin_pid), time.process_time())
                    totals.setdefault((name, size), []).append(total)
                    cpu.setdefault((name, size), []).append(
                        tuple(b - a for a, b in zip(before, after, strict=True))  # type: ignore[arg-type]
                    )
                    failures += failed
                    time.sleep(0.2)
    finally:
        for clients, _ in paths.values():
            for client in clients:
                client.close()
    return totals, cpu, failures


def provider_race(space: str, runs: int, work: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of ``bench.provider_race``, or why it could not run."""
    if not BENCH_PYTHON.exists():
        return [], (
            f"no bench interpreter at {BENCH_PYTHON}: python3 -m venv --system-site-packages "
            ".venv-bench && .venv-bench/bin/pip install -r bench/requirements.txt"
        )
    args = ["--space", space, "--runs", str(runs), "--output-dir", str(work / "provider-outputs")]
    done = run_module("bench.provider_race", *args, timeout=600, python=str(BENCH_PYTHON))
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not rows:
        return rows, (done.stderr.strip().splitlines() or ["no output"])[-1]
    return rows, None


def run(quick: bool = False, *, rounds: int | None = None) -> Section:
    """Measure; ``quick`` makes it a smoke run."""
    began = time.monotonic()
    count = rounds or (1 if quick else 4)
    work = Path(tempfile.mkdtemp(prefix="sd35-bench-remote-"))
    standin = app = None
    options = StandinOptions(
        seconds_per_step=STEP_SECONDS, previews=False, concurrency=max(SIZES), premade=True
    )
    progress("remote compute: PNG encoders, size against time")
    png_table = png_levels.measure(1 if quick else 3)
    try:
        standin, space = start_standin(options, work)
        progress("remote compute: starting the studio app")
        app, studio = start_app(space, work, "--concurrency", str(max(SIZES)))
        totals, cpu, failures = measure_sessions(space, studio, app.pid, standin.pid, count)
        stop_process(app)
        app = None
        progress("remote compute: the floor (Gradio alone, the hop, the save)")
        floor = {
            "gradio": cpu_floor.gradio_alone(STEPS * STEP_SECONDS, (1, max(SIZES)), count),
            "hop": cpu_floor.hop(space, REQUEST.as_inputs(), 2 if quick else 5),
            "save": cpu_floor.save(1 if quick else 3),
        }
        progress("remote compute: the provider beside the seed's")
        race, race_problem = provider_race(space, 2 if quick else 6, work)
    finally:
        stop_process(app)
        stop_process(standin)
        shutil.rmtree(work, ignore_errors=True)
    section = report(totals, cpu, failures, race, race_problem, time.monotonic() - began)
    section.tables.append(floor_table(floor, median([a for a, _, _ in cpu[("studio", 8)]]) / 8))
    section.notes.append(FLOOR_NOTE)
    section.tables.append(png_table)
    section.notes.append(
        "PNG encoders: one picture of the stand-in's stock, decoded from its WebP as the "
        "studio gets it; CPU is the best of 3 runs in the bench's process (level 9: 1 run). "
        "Pillow tries every row filter on every row, which costs about as much as zlib's "
        "level 1; sd35 writes RGB/RGBA with one filter (Up, a vectorised subtraction) and "
        "deflates with ISA-L (`isal`) at level 1: the size of zlib's level 1 (~13 % larger "
        "than level 6) in about 40 % of its time; zlib level 1 where `isal` is missing "
        "(`bench/png_levels.py`)."
    )
    return section


FLOOR_NOTE = (
    "The floor: the three parts of an image's CPU that the studio's code cannot take below "
    "what their tools cost, each measured alone in the same run (`bench/cpu_floor.py`): a "
    "Gradio app with one `/generate` that sleeps the job's time and answers with a PNG "
    "already in Gradio's cache (the studio's Gradio settings; app CPU per job at 8 sessions, "
    "and at 1 session in the row's label); one `gradio_client` `/infer` call to the "
    "stand-in downloading the WebP (this process's CPU); decoding that WebP and encoding "
    "its PNG."
)


def floor_table(floor: dict[str, Any], studio_per_image: float) -> Table:
    """Where a remote-compute image's CPU goes: the floor's three parts and the studio."""
    gradio = floor["gradio"]
    parts = (gradio[max(SIZES)], floor["hop"], floor["save"])
    table = Table(["1024×1024 image, 8 sessions", "CPU per image"])
    table.add(
        f"Gradio serving a `/generate` job (1 session: {fmt_ms(gradio[1])})", fmt_ms(parts[0])
    )
    table.add("the second hop: `gradio_client` `/infer`, downloading the WebP", fmt_ms(parts[1]))
    table.add("the save: WebP decoded, PNG encoded (`sd35.png_writer`)", fmt_ms(parts[2]))
    table.add("**the floor: the three together**", fmt_ms(sum(parts)))
    table.add("the studio (8 sessions, above)", fmt_ms(studio_per_image))
    table.add("↳ the studio's own beyond the floor", fmt_ms(studio_per_image - sum(parts)))
    return table


def report(totals, cpu, failures, race, race_problem, seconds: float) -> Section:
    section = Section("Remote compute: the studio's own cost when the GPU is elsewhere")

    def med(name: str, size: int) -> float:
        return median(totals.get((name, size), []))

    def app_cpu_per_image(size: int) -> float:
        return median([a for a, _, _ in cpu.get(("studio", size), [])]) / size

    # The app's CPU per second while only the bare clients ran: Gradio's queue polls every
    # millisecond when it has nothing to do, a cost that runs whether or not jobs do.
    bare_rounds = [key for key in cpu if key[0] == "bare"]
    idle_rate = median(
        [c[0] / t for key in bare_rounds for c, t in zip(cpu[key], totals[key], strict=True)]
    )

    def net_cpu_per_image(size: int) -> float:
        return app_cpu_per_image(size) - idle_rate * med("studio", size) / size

    ratio1 = med("studio", 1) / med("bare", 1)
    ratio8 = med("studio", 8) / med("bare", 8)
    cpu_image = app_cpu_per_image(8)
    ok = not failures
    targets = [
        (
            "at 8 sessions the studio ≤ 1.15× the bare client",
            "≤ 1.15×",
            fmt_ratio(ratio8),
            ok and ratio8 <= 1.15,
        ),
        (
            "at 1 session the studio ≤ 1.05× the bare client",
            "≤ 1.05×",
            fmt_ratio(ratio1),
            ok and ratio1 <= 1.05,
        ),
        (
            "the studio's CPU per 1024×1024 image ≤ 40 ms (8 sessions)",
            "≤ 40 ms",
            fmt_ms(cpu_image),
            ok and cpu_image <= 0.040,
        ),
    ]
    seed = [r["seconds"] for r in race if r["path"] == "seed"]
    ours = [r["seconds"] for r in race if r["path"] == "ours"]
    provider_ratio = median(ours) / median(seed) if seed and ours else float("nan")
    provider_met = None if race_problem else provider_ratio <= 1.0
    targets.append(
        (
            "the provider ≤ 1.0× the seed's provider (to the ImageResponse)",
            "≤ 1.0×",
            fmt_ratio(provider_ratio),
            provider_met,
        )
    )
    table = Table(["target", "measured", "met?"])
    for what, goal, measured, met in targets:
        table.add(what, measured, verdict(met))
        section.targets.append(Target(section.title, what, goal, measured, met))
    section.tables.append(table)

    sessions = Table(
        [
            "sessions",
            "rounds",
            "bare `/infer`",
            "studio `/generate`",
            "studio × bare",
            "8 vs 1 (bare / studio)",
            "app CPU per round",
            "app CPU per image",
            "… less idle polling",
            "stand-in CPU per round",
            "clients' CPU per round",
        ]
    )
    for size in SIZES:
        rows = cpu.get(("studio", size), [])
        sessions.add(
            size,
            len(totals.get(("studio", size), [])),
            fmt_s(med("bare", size)),
            fmt_s(med("studio", size)),
            fmt_ratio(med("studio", size) / med("bare", size)),
            " / ".join(fmt_ratio(med(name, size) / med(name, 1)) for name in ("bare", "studio")),
            fmt_s(median([a for a, _, _ in rows])),
            fmt_ms(app_cpu_per_image(size)),
            fmt_ms(net_cpu_per_image(size)),
            fmt_s(median([s for _, s, _ in rows])),
            fmt_s(median([c for _, _, c in rows])),
        )
    section.tables.append(sessions)

    if race:
        providers = Table(
            [
                "provider",
                "runs",
                "to the ImageResponse",
                "× seed",
                "to the PNG stored",
                "CPU per call",
            ]
        )
        labels = {
            "seed": "the seed's (g4f `StabilityAI_SD35Large`): a URL on the Space",
            "ours": "sd35's: the gallery PNG (written while handed over)",
            "bare": "bare `gradio_client` `predict` (downloads the WebP), for reference",
        }
        for name in ("seed", "ours", "bare"):
            rows = [r for r in race if r["path"] == name]
            times = [r["seconds"] for r in rows]
            stored = [r["stored"] for r in rows if "stored" in r]
            providers.add(
                labels[name],
                len(rows),
                fmt_s(median(times)),
                fmt_ratio(median(times) / median(seed)) if seed else "—",
                fmt_s(median(stored)) if stored else "—",
                fmt_ms(median([r["cpu"] for r in rows])),
            )
        section.tables.append(providers)
    section.notes += [
        f"Stand-in in remote-compute mode (`python -m sd35.standin --premade`): {STEPS} steps × "
        f"{STEP_SECONDS * 1000:.0f} ms of sleep, {SIZE}×{SIZE}, no previews, up to 8 jobs at "
        "once; its images (WebP, with photo-like grain so that a PNG of them costs what a real "
        "one does) are made once at start, so it spends no CPU per job beyond Gradio's own. "
        "The app runs with `--concurrency 8` and saves every image in its gallery; sessions are "
        "`gradio_client.Client`s of their own, connected beforehand, not downloading files "
        "(`download_files=False`): the time is to each job's final answer.",
        "App CPU: user + system seconds of the app process over a round (median), per image "
        "divided by the sessions of the round. While only the bare clients ran, the idle app "
        f"used {idle_rate * 1000:.0f} ms of CPU per second: Gradio's queue loop wakes "
        "when it has nothing to do (`Queue.start_processing`: every 10 ms in the app, "
        "`sd35/gradio_tuning.py`; every millisecond in the stand-in, Gradio's default). "
        "`… less idle polling` subtracts that rate over the round: the work the images "
        "themselves cost.",
    ]
    if race_problem:
        section.notes.append(f"The provider race did not run: {race_problem}.")
    else:
        section.notes.append(
            "Providers: one call after the other in one process (the bench's interpreter with "
            "g4f), order rotating each round, 1024×1024, 40 steps. The seed's provider is g4f's "
            "unchanged, its class attribute `url` set to the stand-in's loopback URL (every "
            "request it makes is built from it). Its `ImageResponse` carries the Space's URL; "
            "ours the gallery PNG, handed over as soon as the Space's image is in while the PNG "
            "is written, and the generator ends once it is stored (`to the PNG stored`)."
        )
    if failures:
        section.notes.append(f"{len(failures)} jobs failed, e.g. {failures[0]}")
    section.seconds = seconds
    return section


def main(argv: list[str] | None = None) -> int:
    return section_main(run, __doc__, argv, ("--rounds", {"type": int}))


if __name__ == "__main__":
    sys.exit(main())
