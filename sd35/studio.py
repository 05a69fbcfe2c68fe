"""The studio service: one Space client and one gallery store wired together, plus the plain
functions the page is a thin layer over (they need no browser and are tested alone).

``Studio.run`` streams a generation and saves its image the moment it arrives; the status
of the Space is refreshed in a background thread so the page never waits on the remote.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd35.backends.direct import failover_backend
from sd35.errors import SD35Error
from sd35.gallery import Reservation, SQLiteGalleryStore, StoredImage
from sd35.metadata import ImageMetadata
from sd35.page_files import PageFiles
from sd35.params import GenerationRequest, SpaceSchema
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

MODEL_NAME = "stabilityai-stable-diffusion-3.5-large"


@dataclass(frozen=True)
class Saved:
    """The final event of ``Studio.run``: the result, stored in the gallery."""

    result: Result
    image: StoredImage


StudioEvent = Queued | Started | Progress | Preview | Result | Saved


_stores: dict[Path, SQLiteGalleryStore] = {}
_stores_lock = threading.Lock()


def open_store(root: Path) -> SQLiteGalleryStore:
    """One store object per output folder in this process (opening reconciles the index)."""
    key = Path(root).resolve()
    with _stores_lock:
        if key not in _stores:
            _stores[key] = SQLiteGalleryStore(key)
        return _stores[key]


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
        extra = {**(extra or {}), "job": job_id}
    return ImageMetadata.from_request(
        result.request,
        result.seed,
        model=getattr(result, "model", "") or MODEL_NAME,
        space=getattr(result, "space", space) if hasattr(result, "backend") else space,
        elapsed=round(result.elapsed, 3),
        extra=extra,
        backend=getattr(result, "backend", "") or f"space:{space}",
    )


def store_result(
    store: SQLiteGalleryStore,
    result: Result,
    *,
    space: str,
    user: str | None = None,
    reservation: Reservation | None = None,
    extra: dict[str, Any] | None = None,
    job_id: str | None = None,
) -> StoredImage:
    """Save a finished image as PNG with its metadata in the gallery (decoded once, encoded
    once; the thumbnail waits until a listing shows it). If saving fails the image is kept
    (``sd35.safekeeping``) and ``ImageNotSavedError`` says where."""
    meta = metadata_for(result, space=space, extra=extra, job_id=job_id)
    return SafeKeeper(store).save(result, meta, user=user, reservation=reservation)


def save_result(
    result: Result, output_dir: Path, *, space: str, user: str | None = None
) -> StoredImage:
    """``store_result`` into the gallery kept in ``output_dir`` (the CLI uses this)."""
    return store_result(open_store(output_dir), result, space=space, user=user)


class Studio:
    """The app's services: the Space client, the gallery, and a background status check."""

    def __init__(
        self,
        client: SpaceClient,
        store: SQLiteGalleryStore,
        *,
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
        #: Hands stored images to the page (and MCP) without serving the output folder.
        self.files = files or PageFiles()
        #: The job queue (``sd35.scheduler.Scheduler``), set by the server when it starts.
        self.scheduler: Any = None
        #: The configured backends in failover order (``sd35.backends``), set by the server.
        self.backends: list[Any] = []

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

    def schema(self) -> SpaceSchema:
        """The Space's declared bounds if known, else the documented ones; never blocks."""
        return self.client.cached_schema()

    # -- generation -----------------------------------------------------------------------------

    async def run(
        self,
        request: GenerationRequest,
        user: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        backend: Any = None,
        job_id: str | None = None,
    ) -> AsyncIterator[StudioEvent]:
        """Stream one generation. The final image comes twice: as ``Result`` the moment it
        arrives (so the page can show it without waiting on disk), then as ``Saved`` once it
        is stored in the gallery. The queue (``sd35.scheduler``) passes the ``backend`` to use
        and its ``job_id``, written into the PNG so a restart can tell the job is done."""
        if backend is None:  # several backends: fail over between them (issue 16)
            backend = failover_backend(self)
        source = backend if backend is not None else self.client
        space = getattr(source, "space", self.client.space)
        async for event in source.generate(request):
            yield event
            if isinstance(event, Result):
                meta = metadata_for(event, space=space, extra=extra, job_id=job_id)
                stored = await asyncio.to_thread(self.keeper.save, event, meta, user=user)
                yield Saved(event, stored)


# --- text for the page (plain functions, tested without a browser) ---------------------------


def status_line(status: SpaceStatus | None, *, space: str, demo: bool) -> str:
    """The one-line Markdown summary of the Space's state shown at the top of the page."""
    where = "the local stand-in Space (demo: not Stable Diffusion)" if demo else f"`{space}`"
    if status is None:
        return f"⏳ Checking {where}…"
    if not status.reachable:
        return f"🔴 {where} is not answering: {status.problem}"
    if status.problem:
        return f"🟠 {where} answers, but: {status.problem}"
    queue = f"{status.queue_size} in queue" if status.queue_size is not None else "queue unknown"
    return f"🟢 {where} is up · {queue}"


def progress_line(event: Queued | Started | Progress, *, image_index: int, batch: int) -> str:
    """What the job is doing now, as short Markdown with a text progress bar."""
    prefix = f"Image {image_index} of {batch}: " if batch > 1 else ""
    if isinstance(event, Queued):
        position = "" if event.position is None else f" at position {event.position + 1}"
        size = f" of {event.queue_size}" if event.queue_size else ""
        eta = f", about {event.eta:.0f} s" if event.eta and event.eta >= 1 else ""
        return f"{prefix}⏳ Waiting in the Space's queue{position}{size}{eta}"
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


def error_line(error: SD35Error) -> str:
    return f"⚠️ **{error.title}**: {error.message}"


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


# --- the form (plain functions, tested without a browser) ------------------------------------


def request_from_form(
    prompt: str,
    negative_prompt: str,
    width: float,
    height: float,
    guidance_scale: float,
    steps: float,
    seed: float | None,
    randomize_seed: bool,
    schema: SpaceSchema,
) -> GenerationRequest:
    """A validated request from the form's raw values (sliders hand over floats)."""
    request = GenerationRequest(
        prompt="" if prompt is None else prompt,
        negative_prompt="" if negative_prompt is None else negative_prompt,
        seed=_whole(seed, 0),
        randomize_seed=False if randomize_seed is None else randomize_seed,
        width=_whole(width, 1024),
        height=_whole(height, 1024),
        guidance_scale=guidance_scale,
        num_inference_steps=_whole(steps, 40),
    )
    return request.validate(schema)  # names any value of the wrong type (NaN, text, a list)


def _whole(value: Any, default: int) -> Any:
    if value is None:
        return default
    return int(value) if isinstance(value, float) and value.is_integer() else value


def details_markdown(meta: ImageMetadata) -> str:
    """All parameters of an image, for the panel beside the large view."""
    negative = meta.negative_prompt or "—"
    return (
        f"**Prompt:** {meta.prompt}\n\n**Negative prompt:** {negative}\n\n"
        f"Seed {meta.seed} · {meta.width}×{meta.height} · {meta.num_inference_steps} steps · "
        f"CFG {meta.guidance_scale:g} · {meta.model}\n\nFrom `{meta.backend or meta.space}` at "
        f"{meta.created_at}"
    )
