"""Helpers for the queue tests: a scheduler on a stand-in Space."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sd35.backends.config import space_backend
from sd35.gallery import SQLiteGalleryStore
from sd35.jobs import JobStore, image_finder
from sd35.params import GenerationRequest
from sd35.scheduler import RetryPolicy, Scheduler
from sd35.space_client import SpaceClient
from sd35.studio import Studio

#: Short waits so quota and retry paths finish within a test.
FAST = RetryPolicy(quota_first=0.3, quota_max=1.0, transient_first=0.1, transient_max=0.2)


def small(prompt: str, steps: int = 4, **kwargs: Any) -> GenerationRequest:
    return GenerationRequest(prompt, width=512, height=512, num_inference_steps=steps, **kwargs)


@contextmanager
def queue_on(
    space_url: str,
    output_dir: Path,
    *,
    concurrency: int = 1,
    max_queue: int | None = None,
    policy: RetryPolicy = FAST,
    start: bool = True,
) -> Iterator[Scheduler]:
    """A started scheduler running on the Space at ``space_url`` through a real ``Studio``."""
    client = SpaceClient(space_url, download_dir=output_dir / ".downloads")
    studio = Studio(client, SQLiteGalleryStore(output_dir))
    store = JobStore.for_gallery(studio.store)

    def runner(job, backend):
        return studio.run(job.request, job.owner, backend=backend, job_id=job.id)

    scheduler = Scheduler(
        store,
        [space_backend(client)],
        runner,
        concurrency=concurrency,
        max_queue=max_queue,
        policy=policy,
    )
    scheduler.studio = studio  # type: ignore[attr-defined]  (for assertions on the gallery)
    if start:
        scheduler.start(find_image=image_finder(studio.store.index_path))
    try:
        yield scheduler
    finally:
        scheduler.stop()
        client.close()
        store.close()


def state_of(scheduler: Scheduler, job_id: str) -> str:
    job = scheduler.store.get(job_id)
    assert job is not None
    return job.state
