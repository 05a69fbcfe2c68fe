"""Headless generation: ``python -m sd35 generate "prompt" [options]``.

Progress goes to stderr (one line with a bar, redrawn in place on a terminal; ``--verbose``
prints a line per event, ``--quiet`` none), the saved file's path to stdout, so scripts can
capture it.
Exit codes: 0 saved, 2 bad input, 3 the Space failed (or the image could not be saved: it is
kept, the message says where), 4 quota exhausted, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sd35.backends import SpaceBackend, build_backends, choose_backends
from sd35.backends.config import add_backend_arguments, status_client
from sd35.errors import InvalidRequestError, QuotaExceededError, SD35Error
from sd35.options import OneLineParser, finite_number, whole_number
from sd35.params import aspect_ratio_presets, build_request
from sd35.safekeeping import ImageNotSavedError
from sd35.space_client import Preview, Progress, Queued, Started
from sd35.studio import place_in_queue
from sd35.tokens import environment_token, read_token_file

EXIT_OK, EXIT_BAD_INPUT, EXIT_REMOTE, EXIT_QUOTA, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m sd35", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="generate one image and save it")
    gen.add_argument("prompt")
    gen.add_argument("--negative-prompt", default="")
    fitting = ", ".join(aspect_ratio_presets())
    gen.add_argument(
        "--aspect-ratio", default="1:1", help=f"one of those that fit the Space: {fitting}"
    )
    gen.add_argument("--width", type=whole_number)
    gen.add_argument("--height", type=whole_number)
    gen.add_argument("--guidance-scale", type=finite_number)
    gen.add_argument("--steps", type=whole_number, help="inference steps (the Space's default: 40)")
    gen.add_argument("--seed", type=whole_number, help="fixed seed (default: random)")
    add_backend_arguments(gen)  # --space and --backend, in failover order
    gen.add_argument("--out", default="outputs", help="output folder (default: %(default)s)")
    gen.add_argument("--token-file", help="file holding a Hugging Face token (else HF_TOKEN)")
    gen.add_argument("--proxy", help="HTTP(S) proxy URL for every request")
    gen.add_argument(
        "--timeout", type=finite_number, default=900.0, help="seconds for the whole job"
    )
    gen.add_argument(
        "--wait-quota",
        action="store_true",
        help="when the GPU quota is out, wait (countdown on stderr) and try again, not exit 4",
    )
    gen.add_argument(
        "--demo",
        action="store_true",
        help="use a local stand-in Space (test patterns; no network or quota needed)",
    )
    talk = gen.add_mutually_exclusive_group()
    talk.add_argument("--quiet", "-q", action="store_true", help="print only the saved path")
    talk.add_argument(
        "--verbose", "-v", action="store_true", help="a line per step and per preview"
    )
    return parser


class ProgressLine:
    """The job's state on one stderr line: redrawn in place on a terminal, else printed once
    per phase (and the last step) so logs stay short."""

    WIDTH = 20

    def __init__(self, *, quiet: bool, verbose: bool, stream: TextIO | None = None) -> None:
        self.quiet, self.verbose = quiet, verbose
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown = ""
        self._pending = ""

    def event(self, event: object) -> None:
        if isinstance(event, Queued):
            self._update(f"queued{place_in_queue(event, with_size=False)}", phase=True)
        elif isinstance(event, Started):
            self._update("generating…", phase=True)
        elif isinstance(event, Progress):
            self._update(self.bar(event.step, event.total), phase=False)
        elif isinstance(event, Preview) and self.verbose:
            self._line(f"preview {event.index}: {event.path}")

    @classmethod
    def bar(cls, step: int, total: int) -> str:
        filled = round(cls.WIDTH * step / total) if total else 0
        return f"step {step}/{total} [{'#' * filled}{'.' * (cls.WIDTH - filled)}]"

    def done(self, line: str) -> None:
        """The last step's line (if not shown yet), then ``line`` on its own."""
        if self._pending and not self.tty:
            self._line(self._pending)
        self._pending = ""
        self.say(line)

    def say(self, line: str) -> None:
        if self.quiet:
            return
        if self.tty and self._shown:
            self.stream.write("\r\033[K")
            self._shown = ""
        self._line(line)

    def _update(self, text: str, *, phase: bool) -> None:
        if self.quiet:
            return
        if self.verbose:
            self._line(text)
        elif self.tty:
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()
            self._shown = text
        elif phase:
            self._line(text)
        else:
            self._pending = text

    def _line(self, text: str) -> None:
        if self.tty and self._shown:
            self.stream.write("\n")
            self._shown = ""
        print(text, file=self.stream, flush=True)


def generate(args: argparse.Namespace) -> int:
    from sd35.gallery import SQLiteGalleryStore
    from sd35.studio import Studio

    line = ProgressLine(quiet=args.quiet, verbose=args.verbose)
    standin = None
    choice = choose_backends(args.backend_specs, token_explicit=bool(args.token_file))
    if args.demo:
        from sd35.standin import StandinConfig, StandinServer

        standin = StandinServer(StandinConfig(previews=True, seconds_per_step=0.05))
        standin.start()
        choice = choose_backends([(f"space:{standin.url}", True)], env={}, token_explicit=False)
        line.say("demo: a local stand-in Space paints test patterns, not Stable Diffusion")
    token = read_token_file(args.token_file) if args.token_file else environment_token()
    downloads = tempfile.mkdtemp(prefix="sd35-downloads-")  # removed once the image is saved
    backends = build_backends(
        choice, token=token, proxy=args.proxy, timeout=args.timeout, download_dir=Path(downloads)
    )
    first = backends[0]
    # Several backends: the studio fails over between them (``sd35.backends.direct``).
    backend = first if len(backends) == 1 else None
    studio: Studio | None = None
    try:
        # Opened (and reconciled) before the Space spends any quota on the image.
        studio = Studio(
            status_client(backends, proxy=args.proxy),
            SQLiteGalleryStore(Path(args.out)),
            backends=backends,
        )
        schema = first.client.schema() if isinstance(first, SpaceBackend) else first.schema()
        request = build_request(
            args.prompt,
            negative_prompt=args.negative_prompt,
            aspect_ratio=args.aspect_ratio,
            width=args.width,
            height=args.height,
            guidance_scale=args.guidance_scale,
            num_inference_steps=args.steps,
            seed=args.seed,
            randomize_seed=args.seed is None,
            schema=schema,
        )
        refusals = 0
        while True:
            try:
                return asyncio.run(_run(studio, request, backend, line))
            except QuotaExceededError as exc:
                if not args.wait_quota:
                    raise
                refusals += 1
                wait_out_quota(exc, refusals)
    finally:
        if studio is not None:
            studio.close()  # the saves under way finish first
        for each in backends:
            each.close()
        shutil.rmtree(downloads, ignore_errors=True)
        if standin is not None:
            standin.stop()


async def _run(studio: Any, request: Any, backend: Any, line: ProgressLine) -> int:
    """One try through ``Studio.generate``: progress on the stderr line, the image saved in
    the gallery, its path printed."""
    from sd35.studio import Saved

    async for _, event in studio.generate(request, backend=backend):
        if isinstance(event, Saved):
            line.done(f"done in {event.result.elapsed:.1f} s, seed {event.result.seed}")
            print(event.image.path)
            return EXIT_OK
        line.event(event)
    return EXIT_REMOTE


def wait_out_quota(
    error: QuotaExceededError, refusals: int, *, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Wait until the time the Space named, else the queue's backoff (``RetryPolicy``: 10 min
    doubling to 2 h), with a countdown on stderr (one line a second on a terminal, else one a
    minute)."""
    from sd35.backends.failover import RetryPolicy
    from sd35.jobs import waiting_line

    if error.retry_after is not None:
        seconds = error.retry_after.total_seconds()
    else:
        seconds = RetryPolicy().quota_delay(refusals)
    until = time.time() + seconds
    _say(f"GPU quota: {error.space_message}")
    tty = sys.stderr.isatty()
    last = -1
    while (left := until - time.time()) > 0:
        if tty or last < 0 or last - left >= 60:
            line = waiting_line(until, time.time())
            print(
                f"\r{line}   " if tty else line,
                end="" if tty else "\n",
                file=sys.stderr,
                flush=True,
            )
            last = left
        sleep(min(1.0, left))
    if tty:
        print(file=sys.stderr)
    _say("trying again…")


def _say(line: str) -> None:
    # On a terminal a progress line may be half-drawn: clear it first.
    prefix = "\r\033[K" if sys.stderr.isatty() else ""
    print(prefix + line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return generate(args)
    except InvalidRequestError as exc:
        _say(f"error: {exc.message}")
        return EXIT_BAD_INPUT
    except ImageNotSavedError as exc:  # generated (quota spent) but the disk refused it
        kept = f" It is kept at {exc.kept_at}." if exc.kept_at else ""
        _say(f"error: {exc.message}{kept}")
        return EXIT_REMOTE
    except QuotaExceededError as exc:
        _say(f"error: {exc.message}")
        return EXIT_QUOTA
    except SD35Error as exc:
        _say(f"error: {exc.title}: {exc.message}")
        return EXIT_REMOTE
    except KeyboardInterrupt:
        _say("interrupted; the remote job was cancelled")
        return EXIT_INTERRUPTED
    except OSError as exc:  # e.g. an unreadable --token-file or unwritable --out
        _say(f"error: {exc.strerror or exc}: {exc.filename or ''}")
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: still one line, never a traceback
        _say(f"error: internal error ({type(exc).__name__}: {exc})")
        return EXIT_REMOTE
