"""Shared fixtures: stand-in Spaces on loopback, and a guard that tests stay on loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from harness import chromium, chromium_available, go_offline

# No test may reach a public host: drop any proxy the environment sets (tests that want a
# proxy start their own on loopback), keep huggingface_hub offline, no token, no analytics.
go_offline()

from sd35.server import RunningStudio  # noqa: E402
from sd35.standin import StandinConfig, StandinServer  # noqa: E402
from tests.studio_support import launch_studio  # noqa: E402

_RESET = {"fault": None, "fault_once": None, "seconds_per_step": 0.01, "queue_hold": 0.0}


def _reset(config: StandinConfig) -> None:
    for key, value in _RESET.items():
        setattr(config, key, value)
    with config.lock:
        config.seen_headers.clear()
        config.seen_inputs.clear()


@pytest.fixture(scope="session")
def _space_server() -> Iterator[StandinServer]:
    with StandinServer(StandinConfig(seconds_per_step=0.01, concurrency=4)) as server:
        yield server


@pytest.fixture(scope="session")
def _preview_server() -> Iterator[StandinServer]:
    config = StandinConfig(seconds_per_step=0.01, previews=True, preview_every=2, concurrency=4)
    with StandinServer(config) as server:
        yield server


@pytest.fixture
def space(_space_server: StandinServer) -> StandinServer:
    """A stand-in like the official Space: returns once, reports tqdm step progress."""
    _reset(_space_server.config)
    return _space_server


@pytest.fixture
def preview_space(_preview_server: StandinServer) -> StandinServer:
    """A stand-in whose ``infer`` is a generator that streams preview frames."""
    _reset(_preview_server.config)
    return _preview_server


@pytest.fixture
def app(preview_space, tmp_path) -> Iterator[RunningStudio]:
    """The studio app on loopback, driving the preview stand-in, with its own output folder."""
    running = launch_studio(preview_space.url, tmp_path / "outputs")
    yield running
    running.close()


@pytest.fixture(scope="module")
def launch_module_app(
    _preview_server: StandinServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., RunningStudio]]:
    """Start studio apps (``ServerOptions`` keywords) on the preview stand-in, shared by a
    module's tests, each with its own output folder; all closed when the module ends."""
    apps: list[RunningStudio] = []

    def launch(**options: object) -> RunningStudio:
        output_dir = tmp_path_factory.mktemp("app") / "outputs"
        apps.append(launch_studio(_preview_server.url, output_dir, **options))
        return apps[-1]

    yield launch
    for app in apps:
        app.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium (skipped where it is missing, except when required).

    Module-scoped on purpose: Playwright's sync API keeps an event loop running in the main
    thread while it is open, which would break later tests that call ``asyncio.run``."""
    if not chromium_available():
        if os.environ.get("SD35_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here but /usr/bin/chromium is missing")
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    with chromium() as instance:
        yield instance
