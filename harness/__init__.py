"""What the tests and the benchmarks share: loopback ports, waiting for a condition with a
deadline, a loopback-only environment, stopping child processes, and Debian's Chromium.

``tests/`` and ``bench/`` both import this package and never each other; ``sd35`` never
imports it (it is test and benchmark tooling, not part of the studio).
"""

from harness.browser import CHROMIUM, CHROMIUM_ARGS, chromium, chromium_available
from harness.net import closed_port, free_port, http_ok, wait_for_http
from harness.offline import go_offline, offline_environment
from harness.processes import stop_process
from harness.waiting import wait_for

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "chromium",
    "chromium_available",
    "closed_port",
    "free_port",
    "go_offline",
    "http_ok",
    "offline_environment",
    "stop_process",
    "wait_for",
    "wait_for_http",
]
