"""Startup: ``python app.py`` to the first HTTP 200 of its page, beside ``import gradio``.

    python -m bench.startup [--quick] [--runs N]

Each run is a fresh process, polled every 20 ms from the moment it is spawned. The app is
pointed at a closed loopback port (``--space http://127.0.0.1:<closed>/``), so it never touches
the network, and serves on a free port with an empty gallery in a temporary folder. Runs of
``python -c "import gradio"``, ``python app.py`` and (for the floor) ``python -c pass``
alternate, so a burst of load on this shared machine hits all of them alike.

One more run of the same start (``--probe``: ``sd35.server.start`` with ``block=False``, as
``app.py`` would, plus one GET) times where the app's start goes: the functions named in
``PHASES`` are wrapped with wall-clock timers (no profiler, so nothing is slowed down).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Budget, median, progress, rss_mib, section_main
from bench.report import Section, Table, Target, fmt_ratio, fmt_s, verdict
from bench.servers import nowhere, run_module, spawn_app
from harness import (
    closed_port,
    free_port,
    http_ok,
    offline_environment,
    stop_process,
    wait_for_http,
)

#: (module, attribute path) of what the probe times inside the app's start.
PHASES: list[tuple[str, str, str]] = [
    ("sd35.gallery", "SQLiteGalleryStore.__init__", "open the gallery store"),
    ("sd35.ui", "build_ui", "build the page (sd35.ui.build_ui)"),
    ("sd35.ui", "aspect_ratio_presets", "↳ of which sd35.params.aspect_ratio_presets"),
    ("gradio.routes", "App.create_app", "gradio App.create_app (all calls)"),
    ("gradio.blocks", "Blocks.queue", "gradio Blocks.queue"),
    ("gradio.blocks", "Blocks.launch", "gradio Blocks.launch"),
]


def timed_process(args: list[str], *, cwd: Path, timeout: float = 180) -> float:
    """Seconds from spawning ``args`` to its exit."""
    began = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=offline_environment(), check=True, timeout=timeout)
    return time.perf_counter() - began


def app_to_first_200(work: Path, output_dir: Path | None = None) -> tuple[float, float]:
    """Seconds from spawning ``python app.py`` to the first 200 of its page, and its resident
    memory then (MiB)."""
    began = time.time()
    process, url = spawn_app(nowhere(), work, output_dir=output_dir or work / "outputs")
    try:
        answered = wait_for_http(url, timeout=180, process=process)
        return answered - began, rss_mib(process.pid)
    finally:
        stop_process(process)


def probe(work: Path) -> dict[str, Any]:
    """In a child: time the phases of the app's start (see the module docstring)."""
    began = time.perf_counter()
    import gradio  # noqa: F401  (timed: the import every Gradio app pays)

    imported_gradio = time.perf_counter()
    import importlib

    totals: dict[str, float] = {label: 0.0 for _, _, label in PHASES}
    calls: dict[str, int] = {label: 0 for _, _, label in PHASES}

    def wrap(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[label] += time.perf_counter() - start
                calls[label] += 1

        return timed

    for module_name, attribute, label in PHASES:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = owner.__dict__[name]
        if isinstance(original, classmethod | staticmethod):
            kind = type(original)
            setattr(owner, name, kind(wrap(original.__func__, label)))
        else:
            setattr(owner, name, wrap(original, label))
    import sd35.server

    imported_all = time.perf_counter()
    options = sd35.server.ServerOptions(
        port=free_port(),
        space=f"http://127.0.0.1:{closed_port()}/",
        output_dir=work / "outputs",
    )
    running = sd35.server.start(options)
    started = time.perf_counter()

    assert http_ok(running.url)
    answered = time.perf_counter()
    result = {
        "import gradio": imported_gradio - began,
        "import sd35 and the rest": imported_all - imported_gradio,
        "sd35.server.start (block=False)": started - imported_all,
        **{label: totals[label] for _, _, label in PHASES},
        "first GET / answered": answered - started,
        "calls": calls,
    }
    return result


def run(quick: bool = False, *, runs: int | None = None) -> Section:
    """Measure; ``quick`` makes it a smoke run (one run each, no breakdown)."""
    began = time.monotonic()
    count = runs or (1 if quick else 5)
    section = Section("Startup: `python app.py` to the first HTTP 200, beside `import gradio`")
    bare: list[float] = []
    gradio_import: list[float] = []
    app: list[float] = []
    rss: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sd35-bench-startup-") as folder:
        work = Path(folder)
        for index in Budget(count, 60 if quick else 240):
            progress(f"startup: run {index + 1}/{count}")
            bare.append(timed_process([sys.executable, "-c", "pass"], cwd=work))
            gradio_import.append(timed_process([sys.executable, "-c", "import gradio"], cwd=work))
            seconds, memory = app_to_first_200(work, work / f"outputs-{index}")
            app.append(seconds)
            rss.append(memory)
        breakdown: dict[str, Any] = {}
        if not quick:  # a smoke run skips the breakdown
            progress("startup: one timed breakdown of the app's start")
            output = run_module("bench.startup", "--probe", folder, timeout=240)
            if output.returncode == 0 and output.stdout.strip():
                breakdown = json.loads(output.stdout.strip().splitlines()[-1])
            else:
                section.notes.append(f"The breakdown run failed: {output.stderr.strip()[-300:]}")

    ratio = median(app) / median(gradio_import)
    met = ratio <= 1.5
    targets = Table(["target", "measured", "met?"])
    targets.add("startup ≤ 1.5× `import gradio`", fmt_ratio(ratio), verdict(met))
    section.tables.append(targets)
    table = Table(["process", "runs", "median", "min", "max", "× import gradio"])
    for label, values in (
        ('`python -c "pass"` (the interpreter alone)', bare),
        ('`python -c "import gradio"`', gradio_import),
        ("`python app.py` to the first 200 of `/`", app),
    ):
        table.add(
            label,
            len(values),
            fmt_s(median(values)),
            fmt_s(min(values)),
            fmt_s(max(values)),
            fmt_ratio(median(values) / median(gradio_import)),
        )
    section.tables.append(table)
    if breakdown:
        calls = breakdown.pop("calls", {})
        phases = Table(["where the app's start goes (one run)", "seconds", "calls"])
        for label, seconds in breakdown.items():
            phases.add(label, fmt_s(float(seconds)), calls.get(label, ""))
        section.tables.append(phases)
    section.targets.append(
        Target(section.title, "startup ≤ 1.5× import gradio", "≤ 1.5×", fmt_ratio(ratio), met)
    )
    section.notes += [
        "The app is pointed at a closed loopback port and serves an empty gallery; the time "
        "runs from spawning the process to the first 200 of `GET /` (polled every 20 ms). "
        f"Its resident memory then: {median(rss):.0f} MiB (median).",
        "The breakdown wraps the named functions with timers in one more start "
        "(`sd35.server.start` in-process, as `app.py` calls it); nested rows are included in "
        "the rows above them, and `App.create_app` runs inside `Blocks` and `queue`/`launch`.",
    ]
    section.seconds = time.monotonic() - began
    return section


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:  # in a child: ``--probe DIR``
        print(json.dumps(probe(Path(argv[1]))), flush=True)
        os._exit(0)  # the server threads would otherwise keep this child alive
    return section_main(run, __doc__, argv, ("--runs", {"type": int}))


if __name__ == "__main__":
    sys.exit(main())
