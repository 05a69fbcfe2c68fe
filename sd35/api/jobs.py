"""Running generations for the APIs: the ``Gate`` that bounds them (one per studio, built by
``server.start`` and held by the studio), the ``Job`` that ``/progress`` and ``/interrupt``
watch, and ``generate_images``, which runs a batch through ``Studio.generate`` (so every image
lands in the gallery with its metadata).

At most ``studio.concurrency`` API and MCP generations run at once; one more is refused at
once with 503 "queue full" rather than left hanging.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sd35.api.errors import ApiError
from sd35.jobs import queue_full
from sd35.params import GenerationRequest
from sd35.space_client import Preview, Progress, Queued, Started
from sd35.studio import BatchControl, Saved, Studio


@dataclass
class Job:
    """One AUTOMATIC1111 txt2img call while it runs (for /progress, /interrupt and /skip)."""

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
    #: The image of the batch (from 1) the last event was about.
    seen: int = 0
    #: Stops the image running now (``/skip``) or the rest (``/interrupt``).
    control: BatchControl = field(default_factory=BatchControl)

    @property
    def interrupted(self) -> bool:
        return self.control.interrupted

    @property
    def skipped(self) -> bool:
        return self.control.skipped

    def fraction(self) -> float:
        within = self.step / self.steps if self.steps else 0.0
        return min(max((self.job_no + within) / max(1, self.job_count), 0.0), 1.0)

    def note(self, index: int, event: Any, request: GenerationRequest) -> None:
        """Follow image ``index`` (from 1) of the batch through ``event``."""
        if index != self.seen:
            self.seen, self.job_no = index, index - 1
            self.step, self.steps = 0, request.num_inference_steps
            self.preview, self.queued = None, True
        if isinstance(event, Queued):
            self.queued = True
        elif isinstance(event, Started):
            self.queued = False
        elif isinstance(event, Progress):
            self.queued = False
            self.step, self.steps = event.step, event.total
        elif isinstance(event, Preview):
            self.preview = event.path
        elif isinstance(event, Saved):
            self.preview = None  # finished: its frames no longer stand for anything unsaved


def _busy(limit: int) -> ApiError:
    full = queue_full(
        f"this studio already runs {limit} API generation(s), its limit",
        "Try again when one has finished.",
    )
    return ApiError(
        503,
        full.message,
        kind="server_error",
        code="queue_full",
        title=full.title,
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


def gate_of(studio: Studio) -> Gate:
    """The gate the HTTP APIs and the MCP tool of ``studio`` share: the one the server built,
    else one made now and kept by the studio (a studio built without the server)."""
    if studio.gate is None:
        studio.gate = Gate(studio.concurrency)
    return studio.gate


async def generate_images(
    studio: Studio,
    request: GenerationRequest,
    count: int,
    owner: str | None,
    job: Job | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Saved]:
    """Run ``count`` images of ``request`` through ``Studio.generate`` (each its own Space
    job, saved in the gallery), noting progress on ``job``. With a ``job``, ``/interrupt``
    (all) or ``/skip`` (the image running) may stop them: the images finished before then are
    returned."""
    results: list[Saved] = []
    control = job.control if job is not None else None
    async for index, event in studio.generate(request, count, owner, extra=extra, control=control):
        if job is not None:
            job.note(index, event, request)
        if isinstance(event, Saved):
            results.append(event)
    return results
