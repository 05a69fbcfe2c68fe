"""A loopback-only environment: no proxies, Hugging Face offline, no token, no analytics."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (child processes import ``sd35``, ``bench`` and ``harness`` from it).
ROOT = Path(__file__).resolve().parents[1]

#: Variables that could send a request off this machine.
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
_DROPPED = (*_PROXY_VARIABLES, "all_proxy", "HF_TOKEN")
#: ... and those that keep libraries from phoning home.
_OFFLINE = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def offline_environment() -> dict[str, str]:
    """The environment for child processes: this one, loopback only, no token."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update(_OFFLINE)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def go_offline() -> None:
    """Make this process loopback-only (call before gradio or gradio_client is imported)."""
    for name in _DROPPED:
        os.environ.pop(name, None)
    os.environ.update(_OFFLINE)
