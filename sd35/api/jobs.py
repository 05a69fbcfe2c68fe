"""Running generations for the APIs: the per-studio ``Gate`` that bounds them, the ``Job``
that ``/progress`` and ``/interrupt`` watch, and ``generate_one``/``generate_many`` that run
requests through ``Studio.run`` (so every image lands in the gallery with its metadata).

At most ``studio.concurrency`` API and MCP generations run at once; one more is refused at
once with 503 "queue full" rather than left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sd35.api.errors import ApiError
from sd35.errors import GenerationFailedError
from sd35.params import GenerationRequest
from sd35.space_client import Preview, Progress, Queued, Started
from sd35.studio import Saved, Studio


@dataclass
class Job:
    """One AUTOMATIC1111 txt2img call while it runs (for /progress and /interrupt)."""

    owner: str | None
    job_count: int
    started: float = field(default_factory=time.monotonic)
    timestamp: str = field(default_factory=lambda: datetime.now().strftime("%Y%m%d%H%M%S"))
    job_no: int = 0
    step: int = 0
    steps: int = 0
    queued: bool = True
    preview: Path | None = None
    preview_png: tuple[Path, str] | None = None
    current: asyncio.Future[Any] | None = None
    interrupted: bool = False
    skipped: bool = False

    def fraction(self) -> float:
        within = self.step / self.steps if self.steps else 0.0
        return min(max((self.job_no + within) / max(1, self.job_count), 0.0), 1.0)

    def stop_current(self) -> None:
        if self.current is not None and not self.current.done():
            self.current.cancel()


def _busy(limit: int) -> ApiError:
    return ApiError(
        503,
        f"Queue full: this studio already runs {limit} API generation(s), its limit. "
        "Try again when one has finished.",
        kind="server_error",
        code="queue_full",
        title="Queue full",
        headers={"retry-after": "5"},
    )


class Gate:
    """One per studio: bounds the API and MCP generations running at once and keeps the running
    A1111 jobs. Used from the server's event loop only; the lock is for safety, not speed."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.active = 0
        self.jobs: list[Job] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one generation slot; ``ApiError`` 503 at once when all are taken."""
        with self._lock:
            if self.active >= self.limit:
                raise _busy(self.limit)
            self.active += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1

    @contextlib.contextmanager
    def track(self, job: Job) -> Iterator[Job]:
        with self._lock:
            self.jobs.append(job)
        try:
            yield job
        finally:
            with self._lock:
                self.jobs.remove(job)

    def jobs_of(self, owner: str | None) -> list[Job]:
        with self._lock:
            return [job for job in self.jobs if owner is None or job.owner == owner]


_gates: weakref.WeakKeyDictionary[Studio, Gate] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


def gate_for(studio: Studio) -> Gate:
    """The gate shared by the HTTP APIs and the MCP tool of one studio."""
    with _gates_lock:
        gate = _gates.get(studio)
        if gate is None:
            gate = _gates[studio] = Gate(studio.concurrency)
        return gate


async def generate_one(
    studio: Studio,
    request: GenerationRequest,
    owner: str | None,
    job: Job | None = None,
    extra: dict[str, Any] | None = None,
) -> Saved:
    """Run one request through ``Studio.run`` (so it is saved in the gallery), noting progress
    on ``job``; returns the saved image."""
    saved: Saved | None = None
    async for event in studio.run(request, owner, extra=extra):
        if job is None:
            pass
        elif isinstance(event, Queued):
            job.queued = True
        elif isinstance(event, Started):
            job.queued = False
        elif isinstance(event, Progress):
            job.queued = False
            job.step, job.steps = event.step, event.total
        elif isinstance(event, Preview):
            job.preview = event.path
        if isinstance(event, Saved):
            saved = event
    if saved is None:
        raise GenerationFailedError("The generation ended without an image (it was cancelled).")
    return saved


async def generate_many(
    studio: Studio,
    requests: Sequence[GenerationRequest],
    owner: str | None,
    job: Job | None,
    extra: dict[str, Any] | None = None,
) -> list[Saved]:
    """Run requests one after another (each image its own Space job). With a ``job``, each
    image runs as a task that ``/interrupt`` (all) or ``/skip`` (this one) may cancel; the
    images finished before then are returned."""
    results: list[Saved] = []
    for index, request in enumerate(requests):
        if job is None:
            results.append(await generate_one(studio, request, owner, None, extra))
            continue
        if job.interrupted:
            break
        job.job_no, job.step, job.steps = index, 0, request.num_inference_steps
        job.preview, job.skipped, job.queued = None, False, True
        task = asyncio.ensure_future(generate_one(studio, request, owner, job, extra))
        job.current = task
        try:
            results.append(await task)
            job.preview = None  # finished: its frames no longer stand for anything unsaved
        except asyncio.CancelledError:
            # Cancelled by /interrupt or /skip: the remote job was cancelled (Generation ends
            # it when its iteration is cancelled). Anything else cancelling us propagates.
            if not (job.interrupted or job.skipped) or not task.cancelled():
                task.cancel()
                raise
        finally:
            job.current = None
    return results
