"""Bounded local load: many API clients at once against the studio app and a stand-in Space.

Every job must end in a result or the expected "queue full" answer; nothing may hang, and the
server's memory should come back near where it started. ``python3 bench/load.py`` runs the full
load (50 clients) and prints its figures; ``tests/test_load.py`` runs a small one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradio_client import Client  # noqa: E402
from gradio_client.utils import QueueError  # noqa: E402

from bench.common import free_port, rss_mib, wait_for_http  # noqa: E402
from sd35.params import GenerationRequest  # noqa: E402
from sd35.standin import StandinConfig, StandinServer  # noqa: E402
from sd35.ui import generate_inputs  # noqa: E402

ARGS = generate_inputs(
    GenerationRequest("a load test", width=512, height=512, num_inference_steps=6)
)


@dataclass
class LoadReport:
    clients: int
    jobs: int
    finished: int = 0
    queue_full: int = 0
    other_errors: list[str] = field(default_factory=list)
    hung: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def accounted(self) -> int:
        return self.finished + self.queue_full + len(self.other_errors) + self.hung


def run_load(url: str, *, clients: int, jobs_per_client: int, timeout: float = 120) -> LoadReport:
    """``clients`` threads, each with its own ``gradio_client.Client``, submit jobs at once."""
    report = LoadReport(clients=clients, jobs=clients * jobs_per_client)
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def one_client() -> None:
        try:
            client = Client(url, verbose=False, download_files=False)
        except Exception as error:  # the app did not even answer: every job of it failed
            with lock:
                report.other_errors += [f"connect: {error}"] * jobs_per_client
            barrier.abort()
            return
        # If another client could not connect, go on without the common start.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=60)
        for _ in range(jobs_per_client):
            began = time.monotonic()
            try:
                result = client.submit(*ARGS, api_name="/generate").result(timeout=timeout)
                outcome = "ok" if str(result[1]).startswith("✅") else f"odd: {result[1]}"
            except QueueError:
                outcome = "full"
            except TimeoutError:
                outcome = "hung"
            except Exception as error:  # counted and reported, never swallowed silently
                outcome = f"{type(error).__name__}: {error}"
            with lock:
                if outcome == "ok":
                    report.finished += 1
                    report.latencies.append(time.monotonic() - began)
                elif outcome == "full":
                    report.queue_full += 1
                elif outcome == "hung":
                    report.hung += 1
                else:
                    report.other_errors.append(outcome)
        client.close()

    began = time.monotonic()
    threads = [threading.Thread(target=one_client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout * jobs_per_client + 60)
    report.seconds = time.monotonic() - began
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--jobs-per-client", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=3, help="repeat the load; RSS is shown after each"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    config = StandinConfig(seconds_per_step=0.02, previews=True, concurrency=args.concurrency)
    # The app runs in its own process so that its memory is measured apart from the clients.
    with StandinServer(config) as space, tempfile.TemporaryDirectory() as folder:
        port = free_port()
        app = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "app.py"),
                "--space",
                space.url,
                "--port",
                str(port),
                "--output-dir",
                folder,
                "--concurrency",
                str(args.concurrency),
                "--max-queue",
                str(args.max_queue),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_for_http(url, timeout=60, process=None)
            run_load(url, clients=2, jobs_per_client=1)  # warm up
            before = rss_mib(app.pid)
            rounds: list[float] = []
            for _ in range(args.rounds):
                report = run_load(url, clients=args.clients, jobs_per_client=args.jobs_per_client)
                time.sleep(3)
                rounds.append(rss_mib(app.pid))
            after = rounds[-1]
        finally:
            app.terminate()
            app.wait(timeout=30)
    p50 = statistics.median(report.latencies) if report.latencies else float("nan")
    print(
        "| clients | jobs | finished | queue full | errors | hung | seconds | p50 job s | "
        "RSS before MiB | RSS after MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {report.clients} | {report.jobs} | {report.finished} | {report.queue_full} | "
        f"{len(report.other_errors)} | {report.hung} | {report.seconds:.1f} | {p50:.2f} | "
        f"{before:.0f} | {after:.0f} |"
    )
    print("RSS after each round (MiB): " + ", ".join(f"{value:.0f}" for value in rounds))
    for error in report.other_errors[:5]:
        print("error:", error, file=sys.stderr)
    return 0 if report.accounted == report.jobs and not report.hung else 1


if __name__ == "__main__":
    sys.exit(main())
