"""A small bounded load through the studio app (the full one is ``python3 -m bench.load``)."""

from __future__ import annotations

from harness.load import run_load
from sd35.standin import StandinConfig, StandinServer
from tests.studio_support import launch_studio


def test_every_job_ends_in_a_result_or_queue_full(tmp_path) -> None:
    config = StandinConfig(seconds_per_step=0.02, previews=True, concurrency=2)
    with StandinServer(config) as space:
        running = launch_studio(space.url, tmp_path / "outputs", concurrency=2, max_queue=3)
        try:
            report = run_load(running.url, clients=10, jobs_per_client=1, timeout=60)
        finally:
            running.close()
    assert report.hung == 0 and report.other_errors == []
    assert report.finished + report.queue_full == 10
    assert report.finished >= 2 and report.queue_full >= 1  # the queue bound was hit
    assert running.studio.store.count() == report.finished  # every finished job was stored
