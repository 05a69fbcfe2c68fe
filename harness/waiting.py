"""Waiting for a condition with a deadline (never a bare sleep standing in for a signal)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 20.0, what: str = "", *, interval: float = 0.02
) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; raise
    ``AssertionError`` (a test failure) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(interval)
