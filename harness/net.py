"""Loopback ports and HTTP readiness (no proxy, 127.0.0.1 only)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request

from harness.waiting import wait_for


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (nothing listens on it yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: A loopback port nobody listens on: connections to it are refused at once.
closed_port = free_port


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers HTTP 200 (no proxy, loopback only)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_for_http(
    url: str,
    *,
    timeout: float = 120.0,
    interval: float = 0.02,
    process: subprocess.Popen | None = None,
) -> float:
    """Poll ``url`` until it answers 200; return the wall-clock time (``time.time()``) of that
    answer. ``RuntimeError`` when ``process`` exits first, ``TimeoutError`` after ``timeout``."""

    def answered() -> float | None:
        if http_ok(url):
            return time.time()
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with code {process.returncode}")
        return None

    try:
        return wait_for(answered, timeout, interval=interval, what=url)
    except AssertionError:
        raise TimeoutError(f"{url} did not answer in {timeout:.0f} s") from None
