"""What every benchmark of the suite shares: progress lines, medians, bounded loops, running
one section alone, and the machine's description. The tables are in ``bench/report.py``;
ports, waiting, the loopback-only environment, child processes and Chromium come from
``harness`` (shared with the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

from bench.report import Section
from harness import CHROMIUM

ROOT = Path(__file__).resolve().parents[1]

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the suite started."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Budget:
    """A bound on a loop: at most ``runs`` iterations and about ``seconds`` of time."""

    def __init__(self, runs: int, seconds: float) -> None:
        self.runs = runs
        self.deadline = time.monotonic() + seconds

    def __iter__(self) -> Iterator[int]:
        for index in range(self.runs):
            if index and time.monotonic() > self.deadline:
                progress(f"  time budget spent: stopping after {index} runs")
                return
            yield index


def section_main(
    run: Callable[..., Section], doc: str, argv: list[str] | None, *options: tuple[str, dict]
) -> int:
    """``python3 -m bench.<module> [--quick] [options]``: run one section alone and print its
    tables. ``options`` are ``(flag, add_argument keywords)``; each goes to ``run`` by name."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    for flag, settings in options:
        parser.add_argument(flag, **settings)
    args = vars(parser.parse_args(argv))
    print(run(args.pop("quick"), **args).markdown())
    return 0


# --- the machine ----------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def _chromium_version() -> str:
    try:
        result = subprocess.run(
            [CHROMIUM, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        return result.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def load_average() -> str:
    """The 1/5/15-minute load averages (the machine is shared: this says how busy it was)."""
    with contextlib.suppress(OSError):
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return "unknown"


def machine() -> dict[str, str]:
    """The facts about this machine and its software that a reader needs to weigh the figures."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} ({usable} usable by this process)",
        "memory": f"{_memory_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "gradio": _version("gradio"),
        "gradio_client": _version("gradio_client"),
        "httpx": _version("httpx"),
        "Pillow": _version("pillow"),
        "playwright": _version("playwright"),
        "Chromium": _chromium_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
