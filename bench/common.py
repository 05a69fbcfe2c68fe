"""What every benchmark of the suite shares: a loopback-only environment, child processes that
always stop, medians, the machine's description, and the tables the suite prints.

Nothing here reaches beyond 127.0.0.1: child processes get an environment without proxies,
with Hugging Face offline and Gradio's analytics off.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Variables that could send a request off this machine, or make a library phone home.
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
_OFFLINE = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def offline_environment() -> dict[str, str]:
    """The environment for child processes: this one, loopback only, no token."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES}
    env.pop("all_proxy", None)
    env.pop("HF_TOKEN", None)
    env.update(_OFFLINE)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def go_offline() -> None:
    """Make this process loopback-only too (call before gradio or gradio_client is imported)."""
    for name in (*_PROXY_VARIABLES, "all_proxy", "HF_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(_OFFLINE)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# The browser tests' Chromium and flags (Debian's, headless, nothing phoning home).
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402, F401  (re-exported)

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the suite started."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    return free_port()


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers HTTP 200 (no proxy, loopback only)."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_for_http(
    url: str, *, timeout: float = 120.0, interval: float = 0.02, process: subprocess.Popen | None
) -> float:
    """Poll ``url`` until it answers 200; return the wall-clock time (``time.time()``) of that
    answer. Fails when ``process`` exits first or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return time.time()
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with code {process.returncode}")
        time.sleep(interval)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop_process(process: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """Terminate a child we started (by its own pid), then kill it if it does not go."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@contextlib.contextmanager
def child(args: Sequence[str], **kwargs: object) -> Iterator[subprocess.Popen]:
    """A child process that is always stopped when the block ends."""
    process = subprocess.Popen(list(args), env=offline_environment(), **kwargs)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        stop_process(process)


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


# --- results ----------------------------------------------------------------------------------


@dataclass
class Table:
    """A Markdown table: a header row and rows of already formatted cells."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Target:
    """One target of the issue, and whether this run met it."""

    section: str
    what: str
    target: str
    measured: str
    met: bool | None  # None: could not be measured in this run

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "not measured"}[self.met]


@dataclass
class Section:
    """What one benchmark hands back: its tables, its targets and notes on method."""

    title: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        parts += [f"- {note}" for note in self.notes]
        if self.notes:
            parts.append("")
        parts.append(f"_Section time: {self.seconds:.0f} s._")
        return "\n".join(parts)


def verdict(met: bool | None) -> str:
    """The "met?" cell."""
    return {True: "yes", False: "**no**", None: "n/a"}[met]


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds, for a cell."""
    return "—" if seconds != seconds else f"{seconds * 1000:.0f} ms"


def fmt_s(seconds: float) -> str:
    """Seconds, for a cell."""
    return "—" if seconds != seconds else f"{seconds:.3f} s"


def fmt_ratio(value: float) -> str:
    """A ratio, for a cell."""
    return "—" if value != value else f"{value:.2f}×"


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
