"""The studio: the one front door every face goes through (the page and its queue, the OpenAI,
A1111 and MCP routes, the CLI, the provider class), plus the plain wording functions the page
is a thin layer over (they need no browser and are tested alone).

``Studio`` is given its services (the Space client, the backends, the gallery store, the API
gate, the queue) by whoever starts it (``server.start``, ``cli``, the provider class), and
offers:

* ``generate(request, count, user)``: a batch run at once, each image saved in the gallery
  as it arrives; every event says which image of the batch it belongs to;
* ``submit(request, count, user)``: the same batch stored in the queue (``sd35.scheduler``),
  which runs each job through ``run`` later;
* ``run(request, user)``: one image, the primitive both of the above (and the queue) use;
* ``gallery(user)`` and ``status_text()`` for the page.

The status of the Space is refreshed in a background thread so the page never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sd35.backends.direct import FailoverBackend
from sd35.errors import GenerationFailedError, SD35Error
from sd35.gallery import Page, Reservation, SQLiteGalleryStore, StoredImage
from sd35.jobs import JOB_KEY, Job
from sd35.metadata import ImageMetadata
from sd35.page_files import PageFiles
from sd35.params import MODEL_ID, GenerationRequest, SpaceSchema, batch_requests
from sd35.safekeeping import SafeKeeper
from sd35.space_client import (
    Preview,
    Progress,
    Queued,
    Result,
    SpaceClient,
    SpaceStatus,
    Started,
)

if TYPE_CHECKING:
    from sd35.scheduler import Scheduler

#: Said wherever a job waits in the Space's own queue (the page, A1111's ``/progress``).
WAITING_IN_SPACE_QUEUE = "Waiting in the Space's queue"
#: Said under the status line when the Space cannot be reached.
DEMO_HINT = "No network or no GPU quota? Start with `python3 app.py --demo` to try the page."


@dataclass(frozen=True)
class Saving:
    """Announced by ``Studio.run(..., announce_saving=True)`` right after ``Result``: the PNG's
    name is fixed (``reservation``) and ``done`` completes once the file is written."""

    result: Result
    reservation: Reservation
    done: Future[StoredImage]


@dataclass(frozen=True)
class Saved:
    """The final event of ``Studio.run``: the result, stored in the gallery."""

    result: Result
    image: StoredImage


StudioEvent = Queued | Started | Progress | Preview | Result | Saving | Saved


def metadata_for(
    result: Result,
    *,
    space: str,
    extra: dict[str, Any] | None = None,
    job_id: str | None = None,
) -> ImageMetadata:
    """The metadata written into the PNG: the request with the seed actually used (the
    store adds the owner; ``extra``, e.g. the APIs' adjustments, and the queue's ``job_id`` are
    kept beside). A backend's result names its backend, model and Space (provenance)."""
    if job_id is not None:
        extra = {**(extra or {}), JOB_KEY: job_id}
    return ImageMetadata.from_request(
        result.request,
        result.seed,
        model=getattr(result, "model", "") or MODEL_ID,
        space=getattr(result, "space", space) if hasattr(result, "backend") else space,
        elapsed=round(result.elapsed, 3),
        extra=extra,
        backend=getattr(result, "backend", "") or f"space:{space}",
    )


class BatchControl:
    """Lets a caller of ``Studio.generate`` stop the image running now (``skip``: the batch
    goes on) or the rest of the batch (``interrupt``); the remote job is cancelled either way.
    A1111's ``/skip`` and ``/interrupt`` use it."""

    def __init__(self) -> None:
        #: The image running now (from 1) and its request (its seed is this image's own).
        self.index = 0
        self.request: GenerationRequest | None = None
        self.skipped = False
        self.interrupted = False
        self._task: asyncio.Task[Any] | None = None

    def skip(self) -> None:
        self.skipped = True
        self._cancel()

    def interrupt(self) -> None:
        self.interrupted = True
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def follow(self, events: AsyncIterator[StudioEvent]) -> AsyncIterator[StudioEvent]:
        """``events``, consumed in a task of their own so that ``skip``/``interrupt`` cancel
        this image alone; ends quietly when they did."""
        queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()

        async def pump() -> None:
            async for event in events:
                queue.put_nowait((False, event))

        task = self._task = asyncio.ensure_future(pump())
        task.add_done_callback(lambda _: queue.put_nowait((True, None)))
        try:
            while True:
                finished, event = await queue.get()
                if finished:
                    break
                yield event
            if task.cancelled() and not (self.skipped or self.interrupted):
                raise asyncio.CancelledError
            task.result()  # raises what the generation raised (a cancel we asked for ends here)
        except asyncio.CancelledError:
            # Cancelled by skip/interrupt: the remote job was cancelled with the task. Anything
            # else cancelling us propagates.
            if not (self.skipped or self.interrupted) or not task.cancelled():
                task.cancel()
                raise
        finally:
            self._task = None
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class Studio:
    """The app's front door over its services: the Space client (status, schema), the
    backends, the gallery, the API gate and the queue."""

    def __init__(
        self,
        client: SpaceClient,
        store: SQLiteGalleryStore,
        *,
        backends: list[Any] | None = None,
        gate: Any = None,
        demo: bool = False,
        status_interval: float = 30.0,
        concurrency: int = 8,
        files: PageFiles | None = None,
    ) -> None:
        self.client = client
        #: How many generations the page runs at once (each holds its own Space connection).
        self.concurrency = concurrency
        self.store = store
        self.demo = demo
        self.status_interval = status_interval
        self._status: SpaceStatus | None = None
        self._status_checked_at: float = 0.0
        self._status_thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: Saves finished images; keeps the ones the output folder cannot take (disk full).
        self.keeper = SafeKeeper(store)
        #: Writes the PNGs off the event loop; its threads finish a save even when the caller
        #: stopped listening (the provider hands out its response before the file is written).
        self.saver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sd35-save")
        #: Hands stored images to the page (and MCP) without serving the output folder.
        self.files = files or PageFiles()
        #: The configured backends in failover order (``sd35.backends``).
        self.backends: list[Any] = list(backends or [])
        #: Bounds the API and MCP generations (``sd35.api.jobs.Gate``); the server passes it
        #: in, an API serving a studio without one gives it one.
        self.gate = gate
        #: The job queue (``sd35.scheduler.Scheduler``), once ``use_queue`` gave it one.
        self.scheduler: Scheduler | None = None
        self._own_states: list[Any] | None = None

    def backend_states(self) -> list[Any]:
        """Each backend's pause state (``sd35.scheduler.BackendState``), in failover order: the
        queue's when it runs (a pause it learned holds here too, and the other way round),
        else the studio's own."""
        if self.scheduler is not None:
            return list(self.scheduler.states)
        if self._own_states is None:
            from sd35.scheduler import BackendState  # local: the scheduler imports this module

            self._own_states = [BackendState(backend) for backend in self.backends]
        return self._own_states

    def use_queue(self, scheduler: Scheduler) -> Scheduler:
        """Send ``submit`` (the page's Generate, the job API) to ``scheduler``."""
        self.scheduler = scheduler
        return scheduler

    def close(self) -> None:
        """Stop the status thread and the queue; let the saves under way finish."""
        self.stop_background()
        if self.scheduler is not None:
            self.scheduler.stop()
        self.saver.shutdown(wait=True)

    # -- background status ----------------------------------------------------------------------

    def start_background(self) -> None:
        """Start refreshing the Space's status (and schema) without blocking the caller."""
        if self._status_thread is None:
            self._status_thread = threading.Thread(
                target=self._status_loop, name="sd35-space-status", daemon=True
            )
            self._status_thread.start()

    def stop_background(self) -> None:
        self._stop.set()

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            self.refresh_status()
            self.keeper.retry()
            self._stop.wait(self.status_interval)

    def refresh_status(self) -> SpaceStatus:
        status = self.client.status()
        if status.reachable:
            try:
                self.client.schema()
            except SD35Error as exc:  # e.g. the endpoint is missing: that is the problem
                status = SpaceStatus(True, status.queue_size, exc.message)
        self._status, self._status_checked_at = status, time.time()
        return status

    @property
    def status(self) -> SpaceStatus | None:
        """The last known status (None until the first check has finished)."""
        return self._status

    def status_text(self) -> str:
        """The status line at the top of the page."""
        return status_line(self._status, space=self.client.space, demo=self.demo)

    def schema(self) -> SpaceSchema:
        """The Space's declared bounds if known, else the documented ones; never blocks."""
        return self.client.cached_schema()

    def gallery(self, user: str | None, **query: Any) -> Page:
        """A page of ``user``'s images, newest first (``query``: ``search``, ``starred``,
        ``offset``, ``limit``, as ``SQLiteGalleryStore.list`` takes them)."""
        return self.store.list(user=user, **query)

    # -- generation -----------------------------------------------------------------------------

    async def generate(
        self,
        request: GenerationRequest,
        count: int = 1,
        user: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        backend: Any = None,
        control: BatchControl | None = None,
    ) -> AsyncIterator[tuple[int, StudioEvent]]:
        """Run ``count`` images of ``request`` now, one after another (a random seed each, or
        consecutive seeds from a fixed one), each saved as it arrives: ``(image index from 1,
        event)``. Each image ends in ``Saved`` or an error. With ``control``, ``skip`` and
        ``interrupt`` stop one image or the rest (those end quietly)."""
        for index, one in enumerate(batch_requests(request, count), start=1):
            events = self.run(one, user, extra=extra, backend=backend)
            if control is not None:
                if control.interrupted:
                    break
                control.index, control.request, control.skipped = index, one, False
                events = control.follow(events)
            saved = False
            async for event in events:
                saved = saved or isinstance(event, Saved)
                yield index, event
            if not saved and not (control and (control.skipped or control.interrupted)):
                raise GenerationFailedError(
                    "The generation ended without an image (it was cancelled)."
                )

    def submit(
        self,
        request: GenerationRequest,
        count: int = 1,
        user: str | None = None,
        *,
        source: str = "page",
        backend: str | None = None,
    ) -> list[Job]:
        """Store ``count`` jobs of ``request`` in the queue (committed when this returns; the
        seeds as ``generate`` gives them), pinned to the backend named ``backend`` if given.
        Blocking (SQLite): call it in a thread from the event loop."""
        if self.scheduler is None:
            raise RuntimeError("the studio has no queue")
        jobs = batch_requests(request, count)
        return self.scheduler.submit(jobs, owner=user, source=source, backend=backend)

    def save(
        self,
        result: Result,
        user: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        job_id: str | None = None,
        space: str | None = None,
        slot: Reservation | None = None,
    ) -> StoredImage:
        """Store a finished image as PNG with its metadata (``metadata_for``) in the gallery,
        at ``slot`` if one was reserved. Blocking; ``run`` calls it in ``saver``. If the disk
        refuses it the image is kept (``sd35.safekeeping``) and ``ImageNotSavedError`` says
        where."""
        meta = metadata_for(result, space=space or self.client.space, extra=extra, job_id=job_id)
        return self.keeper.save(result, meta, user=user, reservation=slot)

    async def run(
        self,
        request: GenerationRequest,
        user: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        backend: Any = None,
        job_id: str | None = None,
        announce_saving: bool = False,
    ) -> AsyncIterator[StudioEvent]:
        """Stream one generation. The final image comes twice: as ``Result`` the moment it
        arrives (so the page can show it without waiting on disk), then as ``Saved`` once it
        is stored in the gallery (with ``announce_saving``, ``Saving`` comes between, as soon
        as the PNG's name is fixed). The queue passes the ``backend`` to use and its ``job_id``,
        written into the PNG so a restart can tell the job is done."""
        if backend is None and len(self.backends) > 1:  # fail over between them
            backend = FailoverBackend(self.backend_states)
        source = backend if backend is not None else self.client
        space = getattr(source, "space", self.client.space)
        async for event in source.generate(request):
            yield event
            if isinstance(event, Result):
                slot = self.store.reserve() if announce_saving else None
                done = self.saver.submit(
                    self.save, event, user, extra=extra, job_id=job_id, space=space, slot=slot
                )
                if slot is not None:
                    yield Saving(event, slot, done)
                yield Saved(event, await asyncio.wrap_future(done))


# --- text for the page (plain functions, tested without a browser) ---------------------------


def status_line(status: SpaceStatus | None, *, space: str, demo: bool) -> str:
    """The one-line Markdown summary of the Space's state shown at the top of the page."""
    where = "the local stand-in Space (demo: not Stable Diffusion)" if demo else f"`{space}`"
    if status is None:
        return f"⏳ Checking {where}…"
    if not status.reachable:
        hint = "" if demo else f" — {DEMO_HINT}"
        return f"🔴 {where} is not answering: {status.problem}{hint}"
    if status.problem:
        return f"🟠 {where} answers, but: {status.problem}"
    queue = f"{status.queue_size} in queue" if status.queue_size is not None else "queue unknown"
    return f"🟢 {where} is up · {queue}"


def place_in_queue(event: Queued, *, with_size: bool = True) -> str:
    """Where a job stands in the Space's queue: " at position 3 of 5, about 42 s"."""
    position = "" if event.position is None else f" at position {event.position + 1}"
    size = f" of {event.queue_size}" if event.queue_size and with_size else ""
    eta = f", about {event.eta:.0f} s" if event.eta and event.eta >= 1 else ""
    return f"{position}{size}{eta}"


def progress_line(event: Queued | Started | Progress, *, image_index: int, batch: int) -> str:
    """What the job is doing now, as short Markdown with a text progress bar."""
    prefix = f"Image {image_index} of {batch}: " if batch > 1 else ""
    if isinstance(event, Queued):
        return f"{prefix}⏳ {WAITING_IN_SPACE_QUEUE}{place_in_queue(event)}"
    if isinstance(event, Started):
        return f"{prefix}🎨 Generating…"
    filled = round(event.fraction * 20)
    bar = "█" * filled + "░" * (20 - filled)
    return f"{prefix}🎨 Step {event.step} of {event.total} `{bar}`"


def result_line(saved: Saved) -> str:
    """The short line under the image: seed, size, seconds."""
    request = saved.result.request
    return (
        f"Seed {saved.result.seed} · {request.width}×{request.height} · "
        f"{request.num_inference_steps} steps · CFG {request.guidance_scale:g} · "
        f"{saved.result.elapsed:.1f} s"
    )


def thumbnail_for(store: SQLiteGalleryStore, image: StoredImage) -> Path:
    """The thumbnail to show for ``image``: made again if it went missing (e.g. after an index
    rebuild), else the original as a last resort."""
    if image.thumbnail_path.is_file():
        return image.thumbnail_path
    return store.ensure_thumbnail(image.id) or image.path


def caption(image: StoredImage, *, width: int = 48) -> str:
    """Gallery caption: shortened prompt, seed and size."""
    meta = image.meta
    prompt = meta.prompt if len(meta.prompt) <= width else meta.prompt[: width - 1] + "…"
    return f"{prompt} · seed {meta.seed} · {meta.width}×{meta.height}"


def details_markdown(meta: ImageMetadata) -> str:
    """All parameters of an image, for the panel beside the large view."""
    negative = meta.negative_prompt or "—"
    return (
        f"**Prompt:** {meta.prompt}\n\n**Negative prompt:** {negative}\n\n"
        f"Seed {meta.seed} · {meta.width}×{meta.height} · {meta.num_inference_steps} steps · "
        f"CFG {meta.guidance_scale:g} · {meta.model}\n\nFrom `{meta.backend or meta.space}` at "
        f"{meta.created_at}"
    )
