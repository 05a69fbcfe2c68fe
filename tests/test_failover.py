"""Failover between backends in the job queue, on two stand-in Spaces and the Inference
stand-in: quota sends a job on to the next backend, an all-paused queue waits for the earliest
retry, a 402 takes a backend out and says why, pins hold, and the token goes only where it
belongs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from harness import wait_for
from sd35.backends import build_backends, choose_backends, failover
from sd35.backends.pins import JobPins
from sd35.gallery import SQLiteGalleryStore
from sd35.jobs import DONE, WAITING, JobStore, image_finder
from sd35.metadata import read_metadata
from sd35.scheduler import RetryPolicy, Scheduler
from sd35.studio import Studio
from tests import inference_support
from tests.inference_support import TOKEN
from tests.queue_support import small

hub_online = inference_support.hub_online
inference = inference_support.inference

#: Long enough that a backend paused by quota without a named time stays paused in a test.
SLOW_QUOTA = RetryPolicy(quota_first=60.0, quota_max=60.0, transient_first=0.1, transient_max=0.2)


@pytest.fixture
def spaces(space, preview_space) -> Iterator[tuple]:
    """Two stand-in Spaces; their quota settings are put back afterwards."""
    yield space, preview_space
    for server in (space, preview_space):
        config = server.config
        config.quota_lift_calls = config.quota_lift_seconds = config.quota_first_refused = None
        config.quota_refused = 0
        config.quota_retry_in = "0:09:48"


@contextmanager
def failover_queue(
    specs: list[tuple[str, bool]],
    output_dir: Path,
    *,
    token: str | None = None,
    token_explicit: bool = False,
    policy: RetryPolicy = SLOW_QUOTA,
) -> Iterator[Scheduler]:
    """A started scheduler over the backends of ``specs``, saving through a real ``Studio``."""
    choice = choose_backends(specs, env={}, token_explicit=token_explicit)
    backends = build_backends(choice, token=token, download_dir=output_dir / ".downloads")
    first_space = next(b for b in backends if b.spec.kind == "space")
    studio = Studio(first_space.client, SQLiteGalleryStore(output_dir), backends=backends)
    store = JobStore.for_gallery(studio.store)

    def runner(job, backend):
        return studio.run(job.request, job.owner, backend=backend, job_id=job.id)

    scheduler = Scheduler(store, backends, runner, policy=policy, pins=JobPins(store.path))
    studio.use_queue(scheduler)
    scheduler.studio = studio  # type: ignore[attr-defined]  (for assertions on the gallery)
    scheduler.start(find_image=image_finder(studio.store.index_path))
    try:
        yield scheduler
    finally:
        scheduler.stop()
        for backend in backends:
            backend.close()
        store.close()


def finished(scheduler: Scheduler, job_id: str, timeout: float = 30.0):
    return wait_for(
        lambda: (j := scheduler.store.get(job_id)) is not None and j.state == DONE and j,
        timeout,
        f"job {job_id} done",
    )


def backend_of_image(scheduler: Scheduler, job) -> str:
    image = scheduler.studio.store.get(job.image_id)  # type: ignore[attr-defined]
    meta = read_metadata(image.path)
    assert meta is not None
    return meta.backend


def states(scheduler: Scheduler) -> dict[str, dict]:
    return {info["name"]: info for info in map(failover.describe, scheduler.states)}


def test_quota_sends_jobs_on_down_the_list(spaces, inference, tmp_path) -> None:
    first, second = spaces
    first.config.fault = "quota"
    specs = [(f"space:{first.url}", False), (f"space:{second.url}", False)]
    specs.append((f"endpoint:{inference.url}", False))
    with failover_queue(specs, tmp_path / "out") as scheduler:
        names = [s.backend.name for s in scheduler.states]
        (job,) = scheduler.submit([small("over the first quota")], owner=None, source="api")
        done = finished(scheduler, job.id)
        assert done.backend == names[1] and backend_of_image(scheduler, done) == names[1]
        assert inference.config.seen_bodies == []

        second.config.fault = "quota"
        (job,) = scheduler.submit([small("over both quotas")], owner=None, source="api")
        done = finished(scheduler, job.id)
        assert done.backend == names[2] and backend_of_image(scheduler, done) == names[2]
        shown = states(scheduler)
        assert [shown[n]["state"] for n in names] == ["waiting", "waiting", "ready"]
        assert shown[names[0]]["retry_at"] and "quota" in shown[names[0]]["reason"].lower()
        assert shown[names[2]]["can_bill"] and not shown[names[0]]["can_bill"]


def test_with_every_backend_paused_the_job_waits_for_the_earliest(spaces, tmp_path) -> None:
    first, second = spaces
    # The first names a one-second wait and serves again after that refusal; the second has
    # no named time (a 60 s pause here).
    first.config.fault, first.config.quota_retry_in = "quota_wait", "0:00:01"
    first.config.quota_lift_calls = 1
    second.config.fault = "quota"
    specs = [(f"space:{first.url}", False), (f"space:{second.url}", False)]
    asked_second = len(second.config.seen_inputs)
    with failover_queue(specs, tmp_path / "out") as scheduler:
        submitted = time.time()
        (job,) = scheduler.submit([small("patience")], owner=None, source="page")
        waiting = wait_for(
            lambda: (j := scheduler.store.get(job.id)).state == WAITING and j.retry_at and j,
            what="the job waiting",
        )
        assert waiting.retry_at - submitted < 10  # the earliest retry, not the 60 s one
        done = finished(scheduler, job.id)
        assert done.backend == f"space:{first.url}"
        assert len(second.config.seen_inputs) - asked_second == 1  # asked once, then left alone


def test_402_takes_the_backend_out_and_says_why(spaces, inference, tmp_path) -> None:
    first, _ = spaces
    inference.config.fault = "credits"
    specs = [(f"endpoint:{inference.url}", False), (f"space:{first.url}", False)]
    with failover_queue(specs, tmp_path / "out") as scheduler:
        paid, free = (s.backend.name for s in scheduler.states)
        (job,) = scheduler.submit([small("no credits left")], owner=None, source="api")
        assert finished(scheduler, job.id).backend == free
        shown = states(scheduler)[paid]
        assert shown["state"] == "out_of_credits" and shown["retry_at"] is None
        assert "credits" in shown["reason"] and "add credits" in shown["reason"]
        assert "out of credits" in failover.state_lines(scheduler.states)
        calls = len(inference.config.seen_bodies)
        (job,) = scheduler.submit([small("straight to the Space")], owner=None, source="api")
        assert finished(scheduler, job.id).backend == free
        assert len(inference.config.seen_bodies) == calls  # not asked again
        scheduler.try_now()  # the user resumes it: it is tried again
        inference.config.fault = None
        (job,) = scheduler.submit([small("credits added")], owner=None, source="api")
        assert finished(scheduler, job.id).backend == paid


def test_a_pinned_job_runs_only_on_its_backend(spaces, inference, tmp_path) -> None:
    first, _ = spaces
    specs = [(f"space:{first.url}", False), (f"endpoint:{inference.url}", False)]
    with failover_queue(specs, tmp_path / "out") as scheduler:
        space_name, paid = (s.backend.name for s in scheduler.states)
        (job,) = scheduler.submit([small("pinned")], owner=None, source="api", backend=paid)
        assert finished(scheduler, job.id).backend == paid
        with pytest.raises(ValueError, match="No backend"):
            scheduler.submit([small("nowhere")], owner=None, source="api", backend="space:x/y")
        # Pinned to a paused backend, it waits although another one is ready.
        first.config.fault = "quota"
        (job,) = scheduler.submit(
            [small("only here")], owner=None, source="api", backend=space_name
        )
        wait_for(
            lambda: scheduler.store.get(job.id).state == WAITING, what="the pinned job waiting"
        )
        first.config.fault = None
        scheduler.try_now()
        assert finished(scheduler, job.id).backend == space_name


def test_the_token_reaches_only_the_backends_it_belongs_to(spaces, inference, tmp_path) -> None:
    granted, other = spaces
    specs = [
        (f"space:{granted.url}", True),  # --space URL with --token-file: the user's explicit grant
        (f"space:{other.url}", False),
        (f"endpoint:{inference.url}", False),
    ]
    with failover_queue(specs, tmp_path / "out", token=TOKEN, token_explicit=True) as scheduler:
        for state in scheduler.states:
            name = state.backend.name
            (job,) = scheduler.submit([small(name)], owner=None, source="api", backend=name)
            finished(scheduler, job.id)
        shown = repr([failover.describe(s) for s in scheduler.states])
    bearer = f"Bearer {TOKEN}"
    assert any(h.get("x-hf-authorization") == bearer for h in granted.config.seen_headers)
    assert not any(bearer in repr(h) for h in other.config.seen_headers)
    assert not any(bearer in repr(h) for h in inference.config.seen_headers)
    assert TOKEN not in shown


def test_the_backends_api_lists_each_state(spaces, tmp_path) -> None:
    from tests.studio_support import launch_studio

    first, second = spaces
    choice = choose_backends([(f"space:{first.url}", False), (f"space:{second.url}", False)])
    running = launch_studio(first.url, tmp_path / "out", api=True, backends=choice)
    try:
        first.config.fault = "quota"
        scheduler = running.studio.scheduler
        (job,) = scheduler.submit([small("via the API")], owner=None, source="api")
        finished(scheduler, job.id)
        answer = httpx.get(running.url + "api/v1/backends").json()["backends"]
    finally:
        running.close()
    assert [b["name"] for b in answer] == [f"space:{first.url}", f"space:{second.url}"]
    assert [b["state"] for b in answer] == ["waiting", "ready"]
    assert answer[0]["retry_at"] and answer[1]["capabilities"]["cancel"] is True


def test_the_synchronous_apis_fail_over_and_then_say_why(spaces, inference, tmp_path) -> None:
    from tests.studio_support import launch_studio

    first, _ = spaces
    first.config.fault = "quota"
    choice = choose_backends([(f"space:{first.url}", False), (f"endpoint:{inference.url}", False)])
    running = launch_studio(first.url, tmp_path / "out", api=True, backends=choice)
    body = {"prompt": "a red kite", "size": "512x512", "response_format": "url"}
    try:
        answer = httpx.post(running.url + "v1/images/generations", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        (item,) = running.studio.store.list().items
        assert item.meta.backend == f"endpoint:{inference.url}"
        inference.config.fault = "credits"
        refused = httpx.post(running.url + "v1/images/generations", json=body, timeout=60)
    finally:
        running.close()
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    assert "Every backend is paused" in message and "credits" in message and "quota" in message
    assert int(refused.headers["retry-after"]) > 0  # the Space's pause comes back by itself


def test_the_cli_fails_over_too(spaces, inference, tmp_path, capsys) -> None:
    from sd35.cli import main

    first, _ = spaces
    first.config.fault = "quota"
    size = ["--width", "512", "--height", "512", "--steps", "4"]
    order = ["--space", first.url, "--backend", f"endpoint:{inference.url}"]
    code = main(["generate", "a paper boat", *size, *order, "--out", str(tmp_path / "out")])
    assert code == 0
    meta = read_metadata(Path(capsys.readouterr().out.strip()))
    assert meta is not None and meta.backend == f"endpoint:{inference.url}"
