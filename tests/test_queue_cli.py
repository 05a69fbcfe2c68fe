"""``python -m sd35 generate --wait-quota``: waits out the quota with a countdown on stderr."""

from __future__ import annotations

from pathlib import Path

from sd35.standin import StandinConfig, StandinServer
from tests.test_cli import run_cli


def test_wait_quota_counts_down_then_saves(tmp_path) -> None:
    config = StandinConfig(
        seconds_per_step=0.01, fault="quota_wait", quota_retry_in="0:00:02", quota_lift_calls=1
    )
    with StandinServer(config) as space:
        waited = run_cli("a patient heron", "--space", space.url, "--steps", "4",
                         "--out", str(tmp_path / "out"), "--wait-quota", cwd=tmp_path)  # fmt: skip
        assert waited.returncode == 0, waited.stderr
        assert "Waiting for GPU quota: next try at" in waited.stderr
        assert "in 0:00:0" in waited.stderr and "trying again" in waited.stderr
        assert Path(waited.stdout.strip()).is_file()
        assert config.quota_refused == 1 and config.jobs_started == 2


def test_without_wait_quota_it_still_exits_4(tmp_path) -> None:
    with StandinServer(StandinConfig(fault="quota_wait")) as space:
        refused = run_cli("x", "--space", space.url, "--out", str(tmp_path), cwd=tmp_path)
        assert refused.returncode == 4 and "retry in 0:09:48" in refused.stderr
