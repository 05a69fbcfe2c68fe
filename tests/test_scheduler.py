"""The scheduler on a stand-in Space: jobs wait out the GPU quota and finish by themselves,
transient failures are retried a bounded number of times, permanent ones fail at once, users
take turns, and a running job can be cancelled remotely."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import free_port, wait_for
from sd35.api.queue_api import iso
from sd35.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, WAITING, JobStore
from sd35.metadata import read_metadata
from sd35.scheduler import RetryPolicy
from sd35.standin import StandinConfig, StandinServer
from tests.queue_support import FAST, queue_on, small, state_of


@pytest.fixture
def standin() -> Iterator[StandinServer]:
    config = StandinConfig(seconds_per_step=0.01, concurrency=4, previews=True, preview_every=2)
    with StandinServer(config) as server:
        yield server


def finished(scheduler, jobs, states=(DONE,)) -> bool:
    return all(state_of(scheduler, job.id) in states for job in jobs)


def test_jobs_run_save_their_image_tagged_with_the_job_and_the_backend(standin, tmp_path):
    with queue_on(standin.url, tmp_path, concurrency=2) as scheduler:
        jobs = scheduler.submit([small("one"), small("two"), small("three")], owner=None,
                                source="api")  # fmt: skip
        wait_for(lambda: finished(scheduler, jobs), what="three images")
        gallery = scheduler.studio.store
        for job in jobs:
            stored = scheduler.store.get(job.id)
            image = gallery.get(stored.image_id)
            assert image.meta.prompt == job.prompt
            assert read_metadata(image.path).extra["job"] == job.id
            assert stored.backend == f"space:{standin.url}" and stored.attempts == 1
        assert gallery.count() == 3


def test_quota_with_a_named_time_waits_until_then_and_finishes_by_itself(standin, tmp_path):
    standin.config.fault = "quota_wait"
    standin.config.quota_retry_in = "0:00:01"
    standin.config.quota_lift_calls = 1
    with queue_on(standin.url, tmp_path, concurrency=1) as scheduler:
        started = time.time()
        first, second = scheduler.submit([small("first"), small("second")], owner=None,
                                         source="page")  # fmt: skip
        waiting = wait_for(lambda: scheduler.store.get(first.id).state == WAITING
                           and scheduler.store.get(first.id), what="the quota wait")  # fmt: skip
        assert waiting.retry_at == pytest.approx(started + 1, abs=1.0)
        assert "retry in 0:00:01" in waiting.reason
        [pause] = scheduler.pauses()
        assert pause.retry_at == waiting.retry_at and "GPU quota" in pause.reason
        assert state_of(scheduler, second.id) == QUEUED  # nothing more sent while paused
        wait_for(lambda: finished(scheduler, [first, second]), what="both after the quota")
        assert time.time() - started >= 0.9
        done = scheduler.store.get(first.id)
        assert done.attempts == 2 and done.history[0][1].startswith("waiting: Waiting for GPU")
        assert scheduler.pauses() == []


def test_quota_without_a_time_backs_off_doubling(standin, tmp_path):
    standin.config.fault = "quota"
    standin.config.quota_lift_calls = 3
    policy = RetryPolicy(quota_first=0.2, quota_max=0.4, transient_first=0.1)
    with queue_on(standin.url, tmp_path, policy=policy) as scheduler:
        [job] = scheduler.submit([small("patient")], owner=None, source="api")
        wait_for(lambda: finished(scheduler, [job]), what="the job after three refusals")
        notes = scheduler.store.get(job.id).history
        waits = [at for at, note in notes if note.startswith("waiting")]
        assert len(waits) == 3 and standin.config.quota_refused == 3
        gaps = [later - earlier for earlier, later in itertools.pairwise(waits)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # 0.2 s, then doubled (capped at 0.4 s)


def test_the_quota_lifts_after_some_seconds(standin, tmp_path):
    standin.config.fault = "quota"
    standin.config.quota_lift_seconds = 0.5
    with queue_on(standin.url, tmp_path, policy=FAST) as scheduler:
        [job] = scheduler.submit([small("later")], owner=None, source="api")
        wait_for(lambda: finished(scheduler, [job]), what="the job once the quota lifted")
        assert scheduler.store.get(job.id).attempts >= 2


def test_transient_failures_are_retried_then_fail_with_the_last_message(standin, tmp_path):
    standin.config.fault = "error"
    policy = RetryPolicy(transient_first=0.05, transient_max=0.1, transient_attempts=3)
    with queue_on(standin.url, tmp_path, policy=policy) as scheduler:
        [job] = scheduler.submit([small("doomed", steps=4)], owner=None, source="api")
        [other] = scheduler.submit([small("fine later")], owner=None, source="api")
        wait_for(lambda: state_of(scheduler, job.id) == FAILED, what="the failure")
        failed = scheduler.store.get(job.id)
        assert failed.attempts == 3
        assert failed.error_title == "Generation failed" and "CUDA out of memory" in (
            failed.error_message
        )
        standin.config.fault = None
        wait_for(lambda: finished(scheduler, [other]), what="the next job")


def test_a_transient_failure_then_success(standin, tmp_path):
    standin.config.fault_once = "crash"
    with queue_on(standin.url, tmp_path) as scheduler:
        [job] = scheduler.submit([small("second time lucky")], owner=None, source="api")
        wait_for(lambda: finished(scheduler, [job]), what="the retried job")
        assert scheduler.store.get(job.id).attempts == 2


def test_permanent_failures_fail_at_once(tmp_path):
    renamed = StandinServer(StandinConfig(api_name="generate"))
    with renamed, queue_on(renamed.url, tmp_path) as scheduler:
        [job] = scheduler.submit([small("nowhere")], owner=None, source="api")
        wait_for(lambda: state_of(scheduler, job.id) == FAILED, what="the failure")
        failed = scheduler.store.get(job.id)
        assert failed.attempts == 1 and failed.error_title == "Endpoint missing"


def test_users_take_turns(standin, tmp_path):
    with queue_on(standin.url, tmp_path, concurrency=1, start=False) as scheduler:
        scheduler.submit([small(f"ann {i}") for i in range(4)], owner="ann", source="api")
        scheduler.submit([small("bob 0"), small("bob 1")], owner="bob", source="api")
        scheduler.submit([small("cy 0")], owner="cy", source="api")
        scheduler.start()
        wait_for(lambda: scheduler.idle(), what="every job")
        order = [inputs["prompt"] for inputs in standin.config.seen_inputs]
        assert order == ["ann 0", "bob 0", "cy 0", "ann 1", "bob 1", "ann 2", "ann 3"]


def test_cancel_a_running_job_cancels_the_remote_job(standin, tmp_path):
    standin.config.seconds_per_step = 0.2
    with queue_on(standin.url, tmp_path) as scheduler:
        running, queued = scheduler.submit([small("long", steps=40), small("next")],
                                           owner=None, source="page")  # fmt: skip
        wait_for(lambda: scheduler.live(running.id) is not None, what="the job to start")
        assert state_of(scheduler, running.id) == RUNNING
        assert scheduler.cancel(running.id)
        assert state_of(scheduler, running.id) == CANCELLED
        wait_for(lambda: standin.config.jobs_cancelled == 1, what="the remote cancel")
        standin.config.seconds_per_step = 0.01
        wait_for(lambda: finished(scheduler, [queued]), what="the next job")
        assert scheduler.studio.store.count() == 1
        assert not scheduler.cancel(running.id)  # cancelled already


def test_move_to_top_retry_and_pause(standin, tmp_path):
    with queue_on(standin.url, tmp_path, start=False) as scheduler:
        a, b, c = scheduler.submit([small("a"), small("b"), small("c")], owner=None,
                                   source="page")  # fmt: skip
        assert scheduler.move_to_top(c.id)
        assert not scheduler.move_to_top(c.id, owner="somebody else")
        scheduler.pause(None)
        scheduler.start()
        assert scheduler.is_paused(None)
        scheduler.store.cancel(b.id)
        scheduler.resume(None)
        wait_for(lambda: finished(scheduler, [a, c]), what="a and c")
        order = [inputs["prompt"] for inputs in standin.config.seen_inputs]
        assert order == ["c", "a"]
        assert scheduler.retry(b.id)
        wait_for(lambda: finished(scheduler, [b]), what="the retried job")


def test_an_unreadable_job_fails_and_the_rest_go_on(standin, tmp_path):
    with queue_on(standin.url, tmp_path, start=False) as scheduler:
        broken, fine = scheduler.submit([small("broken"), small("fine")], owner=None,
                                        source="api")  # fmt: skip
        with scheduler.store._lock:
            scheduler.store._conn.execute(
                "UPDATE jobs SET request = '[1, 2' WHERE id = ?", (broken.id,)
            )
        scheduler.start()
        wait_for(lambda: finished(scheduler, [fine]), what="the readable job")
        failed = scheduler.store.get(broken.id)
        assert failed.state == FAILED and "cannot be read" in failed.error_message


def test_stopping_puts_running_jobs_back_in_the_queue(standin, tmp_path):
    standin.config.seconds_per_step = 0.2
    with queue_on(standin.url, tmp_path) as scheduler:
        [job] = scheduler.submit([small("long", steps=40)], owner=None, source="page")
        wait_for(lambda: scheduler.live(job.id) is not None, what="the job to start")
        scheduler.stop()
        stored = scheduler.store.get(job.id)
        assert stored.state == QUEUED and "shutdown" in stored.history[-1][1]


# --- SIGKILL of the app process -------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def _app(space_url: str, output_dir: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, str(REPO / "app.py"), "--space", space_url, "--port", str(port),
               "--output-dir", str(output_dir), "--api", "--concurrency", "1"]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/api/v1/jobs").is_success
    except httpx.HTTPError:
        return False


def _jobs(client: httpx.Client) -> dict[str, dict]:
    try:
        response = client.get("/api/v1/jobs", params={"limit": 100})
    except httpx.HTTPError:
        return {}
    return {job["prompt"]: job for job in response.json()["jobs"]} if response.is_success else {}


def test_sigkill_while_jobs_are_queued_waiting_and_running_loses_none_runs_none_twice(tmp_path):
    config = StandinConfig(seconds_per_step=0.1, concurrency=4, previews=True)
    port = free_port()
    outputs = tmp_path / "outputs"
    with (
        StandinServer(config) as space,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        app = _app(space.url, outputs, port)
        try:
            wait_for(lambda: _up(client), timeout=90, what="the app")
            config.fault_once = "crash"  # a transient failure: the job waits 15 s
            body = {"width": 512, "height": 512, "num_inference_steps": 4}
            client.post("/api/v1/jobs", json={"prompt": "waiting", **body})
            wait_for(lambda: _jobs(client)["waiting"]["state"] == "waiting", what="waiting")
            retry_at = _jobs(client)["waiting"]["retry_at"]
            client.post("/api/v1/jobs", json={**body, "prompt": "running",
                                               "num_inference_steps": 40})  # fmt: skip
            for name in ("queued 1", "queued 2"):
                client.post("/api/v1/jobs", json={"prompt": name, **body})
            wait_for(lambda: config.jobs_started == 2 and _jobs(client)["running"]["state"]
                     == "running", what="the long job to run")  # fmt: skip
            states = {prompt: job["state"] for prompt, job in _jobs(client).items()}
            assert states == {"waiting": "waiting", "running": "running",
                              "queued 1": "queued", "queued 2": "queued"}  # fmt: skip
        finally:
            app.send_signal(signal.SIGKILL)
            app.wait(10)
        # What the killed process left on disk: every job, in the state it was in.
        store = JobStore(outputs / ".index.sqlite3")
        left = {job.prompt: job for job in store.list()}
        store.close()
        assert {prompt: job.state for prompt, job in left.items()} == states
        assert retry_at.startswith(iso(left["waiting"].retry_at)[:19])
        app = _app(space.url, outputs, port)
        try:
            wait_for(lambda: len(_jobs(client)) == 4, timeout=90, what="the restarted app")
            notes = [entry["note"] for entry in _jobs(client)["running"]["history"]]
            assert "interrupted by a restart, queued again" in notes
            wait_for(lambda: all(job["state"] == "done" for job in _jobs(client).values()),
                     timeout=90, what="every job")  # fmt: skip
        finally:
            app.send_signal(signal.SIGTERM)
            app.wait(20)
    pngs = sorted(outputs.glob("????-??-??/*.png"))
    made = [read_metadata(png).prompt for png in pngs]
    assert sorted(made) == ["queued 1", "queued 2", "running", "waiting"]  # none twice
    started = [inputs["prompt"] for inputs in config.seen_inputs]
    assert started.count("queued 1") == started.count("queued 2") == 1
    assert started.count("waiting") == 2  # the failed try, then the one that worked
