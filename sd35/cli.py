"""Headless generation: ``python -m sd35 generate "prompt" [options]``.

Progress goes to stderr (one line with a bar, redrawn in place on a terminal; ``--verbose``
prints a line per event, ``--quiet`` none), the saved file's path to stdout, so scripts can
capture it.
Exit codes: 0 saved, 2 bad input, 3 the Space failed, 4 quota exhausted, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from sd35.errors import InvalidRequestError, QuotaExceededError, SD35Error
from sd35.params import aspect_ratio_presets, build_request
from sd35.space_client import DEFAULT_SPACE, Preview, Progress, Queued, Result, SpaceClient, Started

EXIT_OK, EXIT_BAD_INPUT, EXIT_REMOTE, EXIT_QUOTA, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


def read_token(token_file: str | None) -> str | None:
    """The Hugging Face token from a file (first line) or ``HF_TOKEN``; None when neither."""
    if token_file:
        return Path(token_file).read_text(encoding="utf-8").strip() or None
    return os.environ.get("HF_TOKEN") or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sd35", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="generate one image and save it")
    gen.add_argument("prompt")
    gen.add_argument("--negative-prompt", default="")
    fitting = ", ".join(aspect_ratio_presets())
    gen.add_argument(
        "--aspect-ratio", default="1:1", help=f"one of those that fit the Space: {fitting}"
    )
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument("--guidance-scale", type=float)
    gen.add_argument("--steps", type=int, help="inference steps (the Space's default: 40)")
    gen.add_argument("--seed", type=int, help="fixed seed (default: random)")
    gen.add_argument(
        "--space",
        default=os.environ.get("SD35_SPACE", DEFAULT_SPACE),
        help="Space id or URL (default: %(default)s; env SD35_SPACE)",
    )
    gen.add_argument("--out", default="outputs", help="output folder (default: %(default)s)")
    gen.add_argument("--token-file", help="file holding a Hugging Face token (else HF_TOKEN)")
    gen.add_argument("--proxy", help="HTTP(S) proxy URL for every request")
    gen.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole job")
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
            position = "" if event.position is None else f" at position {event.position + 1}"
            eta = f", about {event.eta:.0f} s" if event.eta and event.eta >= 1 else ""
            self._update(f"queued{position}{eta}", phase=True)
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
    from sd35.studio import save_result

    line = ProgressLine(quiet=args.quiet, verbose=args.verbose)
    standin = None
    space = args.space
    if args.demo:
        from sd35.standin import StandinConfig, StandinServer

        standin = StandinServer(StandinConfig(previews=True, seconds_per_step=0.05))
        standin.start()
        space = standin.url
        line.say("demo: a local stand-in Space paints test patterns, not Stable Diffusion")
    client = SpaceClient(
        space, token=read_token(args.token_file), proxy=args.proxy, timeout=args.timeout
    )
    try:
        schema = client.schema()
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
        for event in client.generate(request):
            if isinstance(event, Result):
                stored = save_result(event, Path(args.out), space=client.space)
                line.done(f"done in {event.elapsed:.1f} s, seed {event.seed}")
                print(stored.path)
                return EXIT_OK
            line.event(event)
        return EXIT_REMOTE
    finally:
        client.close()
        if standin is not None:
            standin.stop()


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
