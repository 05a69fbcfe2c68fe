"""Headless generation: ``python -m sd35 generate "prompt" [options]``.

Progress goes to stderr, the saved file's path to stdout, so scripts can capture it.
Exit codes: 0 saved, 2 bad input, 3 the Space failed (or the image could not be saved: it is
kept, the message says where), 4 quota exhausted, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sd35.errors import InvalidRequestError, QuotaExceededError, SD35Error
from sd35.options import OneLineParser, finite_number, whole_number
from sd35.params import ASPECT_RATIOS, build_request
from sd35.safekeeping import ImageNotSavedError
from sd35.space_client import (
    DEFAULT_SPACE,
    Preview,
    Progress,
    Queued,
    Result,
    SpaceClient,
    Started,
    space_url,
)
from sd35.tokens import resolve_token

EXIT_OK, EXIT_BAD_INPUT, EXIT_REMOTE, EXIT_QUOTA, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m sd35", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="generate one image and save it")
    gen.add_argument("prompt")
    gen.add_argument("--negative-prompt", default="")
    gen.add_argument("--aspect-ratio", default="1:1", help=f"one of {', '.join(ASPECT_RATIOS)}")
    gen.add_argument("--width", type=whole_number)
    gen.add_argument("--height", type=whole_number)
    gen.add_argument("--guidance-scale", type=finite_number)
    gen.add_argument("--steps", type=whole_number, help="inference steps (the Space's default: 40)")
    gen.add_argument("--seed", type=whole_number, help="fixed seed (default: random)")
    gen.add_argument(
        "--space",
        default=os.environ.get("SD35_SPACE", DEFAULT_SPACE),
        help="Space id or URL (default: %(default)s; env SD35_SPACE)",
    )
    gen.add_argument("--out", default="outputs", help="output folder (default: %(default)s)")
    gen.add_argument("--token-file", help="file holding a Hugging Face token (else HF_TOKEN)")
    gen.add_argument("--proxy", help="HTTP(S) proxy URL for every request")
    gen.add_argument(
        "--timeout", type=finite_number, default=900.0, help="seconds for the whole job"
    )
    return parser


def generate(args: argparse.Namespace) -> int:
    from sd35.studio import save_result

    token = resolve_token(space_url(args.space), args.token_file)  # the one token rule
    downloads = tempfile.mkdtemp(prefix="sd35-downloads-")  # removed once the image is saved
    client = SpaceClient(
        args.space, token=token, proxy=args.proxy, timeout=args.timeout, download_dir=downloads
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
            if isinstance(event, Queued):
                position = "" if event.position is None else f" at position {event.position + 1}"
                eta = f", about {event.eta:.0f} s" if event.eta and event.eta >= 1 else ""
                _say(f"queued{position}{eta}")
            elif isinstance(event, Started):
                _say("generating…")
            elif isinstance(event, Progress):
                _say(f"step {event.step}/{event.total}")
            elif isinstance(event, Preview):
                _say(f"preview {event.index}: {event.path}")
            elif isinstance(event, Result):
                stored = save_result(event, Path(args.out), space=client.space)
                _say(f"done in {event.elapsed:.1f} s, seed {event.seed}")
                print(stored.path)
                return EXIT_OK
        return EXIT_REMOTE
    finally:
        client.close()
        shutil.rmtree(downloads, ignore_errors=True)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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
