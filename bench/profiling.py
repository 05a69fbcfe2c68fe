"""Where the studio app's time goes: a py-spy profile of the app process under a fixed load.

    python3 -m pip install py-spy        # once
    python3 -m bench.profiling concurrency # 4 rounds of 8 sessions at once
    python3 -m bench.profiling stream      # 8 jobs one after the other (the page's server work)
    python3 -m bench.profiling stream --all-threads   # CPU of every thread, not only the GIL's
    python3 -m bench.profiling remote      # 4 rounds of 8 at once, remote-compute stand-in

The stand-in and the app run as in ``bench.concurrency``; ``py-spy record`` samples the app at
200 Hz, by default only the thread holding the GIL (``--gil``: in one Python process that is
what serialises the work), and the frames that take the largest share of the samples are
printed: self time (the frame itself) and inclusive time (the frame and what it calls).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gradio_client import Client

from bench import remote_compute
from bench.common import progress
from bench.concurrency import one_round
from bench.servers import StandinOptions, start_app, start_standin
from harness import stop_process


def summarise(raw: Path, top: int) -> str:
    """The frames with the largest share of samples, from py-spy's ``raw`` (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count_text = line.rsplit(" ", 1)
        count = int(count_text)
        frames = stack.split(";")[1:]  # the first entry names the thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples ({total / 200:.1f} s at 200 Hz)", "", "self:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["concurrency", "stream", "remote"])
    parser.add_argument("--all-threads", action="store_true", help="not only the GIL holder")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("needs py-spy: python3 -m pip install py-spy", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sd35-bench-profile-"))
    raw = args.raw or work / "profile.raw"
    standin = app = spy = None
    try:
        remote = args.scenario == "remote"
        options = StandinOptions(concurrency=8)
        if remote:
            options = StandinOptions(
                seconds_per_step=remote_compute.STEP_SECONDS,
                previews=False,
                concurrency=8,
                premade=True,
            )
        standin, space = start_standin(options, work)
        app, studio = start_app(space, work, "--concurrency", "8")
        clients = [Client(studio, verbose=False, download_files=False) for _ in range(8)]
        if remote:
            remote_compute.one_round(clients, 8, "/generate")  # warm-up
        else:
            one_round(clients, 8)  # warm-up
        record = ["py-spy", "record", "-p", str(app.pid), "-r", "200", "-f", "raw"]
        record += ["-o", str(raw), "--threads", *([] if args.all_threads else ["--gil"])]
        spy = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        progress(f"profile: {args.scenario}")
        if remote:
            for _ in range(4):
                remote_compute.one_round(clients, 8, "/generate")
        elif args.scenario == "concurrency":
            for _ in range(4):
                one_round(clients, 8)
        else:
            for _ in range(8):
                one_round(clients, 1)
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
        for client in clients:
            client.close()
    finally:
        stop_process(spy)
        stop_process(app)
        stop_process(standin)
    if not raw.is_file():
        print("py-spy wrote no profile (is ptrace allowed here?)", file=sys.stderr)
        return 1
    print(summarise(raw, args.top))
    if args.raw is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
