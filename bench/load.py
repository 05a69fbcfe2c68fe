"""Bounded local load: many API clients at once against the studio app and a stand-in Space.

Every job must end in a result or the expected "queue full" answer; nothing may hang, and the
server's memory should come back near where it started. ``python3 -m bench.load`` runs the full
load (50 clients) and prints its figures; ``tests/test_load.py`` runs a small one (both with
``harness.load.run_load``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT, rss_mib
from harness import free_port, wait_for_http
from harness.load import run_load
from sd35.standin import StandinConfig, StandinServer


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
