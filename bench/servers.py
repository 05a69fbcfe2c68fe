"""The servers the benchmarks measure, each in a process of its own on 127.0.0.1: the stand-in
Space (optionally logging the moment it emits each image) and the studio app (``app.py``)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT
from harness import closed_port, free_port, offline_environment, stop_process, wait_for_http


@dataclass(frozen=True)
class StandinOptions:
    """How the stand-in behaves (``python -m sd35.standin`` options)."""

    seconds_per_step: float = 0.02
    preview_every: int = 4
    concurrency: int = 2
    previews: bool = True
    #: Remote-compute mode (``--premade``): images made once, a job is only a sleep.
    premade: bool = False


def start_standin(
    options: StandinOptions, work: Path, emit_log: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """The stand-in in its own process (through ``bench.standin_probe`` when ``emit_log`` is
    given); returns the process and its URL. Its log goes to ``work/standin.log``."""
    module = ["bench.standin_probe", "--emit-log", str(emit_log)] if emit_log else ["sd35.standin"]
    args = [
        sys.executable,
        "-m",
        *module,
        "--preview-every",
        str(options.preview_every),
        "--seconds-per-step",
        str(options.seconds_per_step),
        "--concurrency",
        str(options.concurrency),
    ]
    if options.previews:
        args.append("--previews")
    if options.premade:
        args.append("--premade")
    with (work / "standin.log").open("a") as log:
        process = subprocess.Popen(
            args, cwd=ROOT, env=offline_environment(), stdout=subprocess.PIPE, stderr=log, text=True
        )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        stop_process(process)
        raise RuntimeError(f"the stand-in did not start (said {url!r}); see {work}/standin.log")
    return process, url


def spawn_app(
    space: str, work: Path, *extra: str, output_dir: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free loopback port, pointed at ``space``, run in ``work`` (its log
    in ``work/app.log``); returns its process and URL at once, before the page answers."""
    port = free_port()
    args = [
        sys.executable,
        str(ROOT / "app.py"),
        "--space",
        space,
        "--port",
        str(port),
        "--output-dir",
        str(output_dir or work / "outputs"),
        *extra,
    ]
    with (work / "app.log").open("a") as log:
        process = subprocess.Popen(
            args, cwd=work, env=offline_environment(), stdout=subprocess.DEVNULL, stderr=log
        )
    return process, f"http://127.0.0.1:{port}/"


def start_app(
    space: str, work: Path, *extra: str, output_dir: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """``spawn_app``, returning once the page answers 200."""
    process, url = spawn_app(space, work, *extra, output_dir=output_dir)
    try:
        wait_for_http(url, timeout=180, process=process)
    except BaseException:
        stop_process(process)
        raise
    return process, url


def run_module(
    module: str, *args: str, timeout: float, check: bool = False, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in a child process from the repository root, loopback only;
    its output captured as text."""
    return subprocess.run(
        [python, "-m", module, *args],
        cwd=ROOT,
        env=offline_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def nowhere() -> str:
    """A Space URL on a closed loopback port: an app pointed there never touches the network."""
    return f"http://127.0.0.1:{closed_port()}/"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc/<pid>/stat``)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
    return ticks / os.sysconf("SC_CLK_TCK")
