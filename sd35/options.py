"""Command-line parsing that fails in one line: ``error: …`` on stderr and exit 2, never a
usage dump or a traceback (shared by ``app.py`` and ``python -m sd35``)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``--help`` still shows everything)."""

    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` (one line) and exit 2."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def port_number(text: str) -> int:
    """A TCP port from 1 to 65535 (argparse ``type``)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, not {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {text} is out of range (1 to 65535)")
    return port


def whole_number(text: str) -> int:
    """A whole number of at most 18 digits (argparse ``type``): ``10**400`` is bad input."""
    cleaned = text.strip()
    digits = cleaned.lstrip("+-")
    if not digits.isdigit() or len(digits) > 18:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of reasonable size")
    return int(cleaned)


def finite_number(text: str) -> float:
    """A finite decimal number (argparse ``type``): NaN and infinity are bad input."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
