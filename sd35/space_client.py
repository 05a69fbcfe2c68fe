"""The Space client: drives the remote ``/infer`` through ``gradio_client`` and speaks in typed
events and typed errors.

Design notes (why it looks like this):

* Constructing ``SpaceClient`` does no network I/O. A ``gradio_client.Client`` fetches the
  Space's config when built, so we build one only when a job or a schema read needs it.
* ``Job.cancel()`` on a shared ``Client`` cancels every job of that session, so each running
  job has a ``Client`` of its own. Idle clients are kept in a small pool and reused by the next
  job (saves two round trips); a client whose job was cancelled or failed is thrown away.
* Space ids are turned into their ``*.hf.space`` URL here, because ``gradio_client`` would
  otherwise ask the Hub API with ``huggingface_hub``, which ignores our proxy.
* Every use of ``gradio_client`` beyond its documented API (the job's update queue and id,
  our own ``POST /cancel``) is in ``sd35.gradio_adapter.GradioJob``, with the reason beside it.
* Failures become ``sd35.errors`` through one table (``FOREIGN_ERRORS``), as httpx maps
  httpcore's exceptions; see "error mapping" below and docs/space-api.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError, ValidationError
from gradio_client.utils import (
    OutputUpdate,
    QueueError,
    Status,
    StatusUpdate,
    TooManyRequestsError,
)

from sd35.errors import (
    ConnectionLostError,
    EndpointMissingError,
    GenerationFailedError,
    InvalidRequestError,
    ProxyError,
    QueueFullError,
    QuotaExceededError,
    SD35Error,
    SpaceBuildingError,
    SpaceError,
    SpacePausedError,
    SpaceSleepingError,
    SpaceTimeoutError,
    SpaceUnavailableError,
    redact,
)
from sd35.gradio_adapter import GradioJob, wake_on_arrival
from sd35.params import DEFAULT_SPACE, GenerationRequest, SpaceSchema
from sd35.tokens import environment_token, token_for

DEFAULT_API_NAME = "/infer"
DEFAULT_HUB_URL = "https://huggingface.co"
#: How often the event loop looks at the job's update queue for progress and previews, when
#: nothing wakes it sooner (in ``async for``, each update and the job's end wake it at once:
#: ``GradioJob.when_updated``, ``GradioJob.when_done``).
POLL_INTERVAL = 0.01
#: The same when the job's updates wake the loop.
WATCHED_POLL_INTERVAL = 0.1


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """The job waits in the Space's queue."""

    position: int | None
    queue_size: int | None
    eta: float | None


@dataclass(frozen=True)
class Started:
    """The Space started working on the job."""


@dataclass(frozen=True)
class Progress:
    """Sampler progress reported by the Space (step ``step`` of ``total``)."""

    step: int
    total: int
    unit: str | None = None
    description: str | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


@dataclass(frozen=True)
class Preview:
    """An intermediate image, sent only by Spaces whose ``infer`` is a generator."""

    path: Path
    index: int


@dataclass(frozen=True)
class Result:
    """The final image, downloaded to the client's download directory."""

    path: Path
    seed: int
    elapsed: float
    request: GenerationRequest


Event = Queued | Started | Progress | Preview | Result


# --- targets -----------------------------------------------------------------------------------


def space_url(space: str) -> str:
    """The base URL (ending in ``/``) of a Space id like ``owner/name``, or a URL as given."""
    if space.startswith(("http://", "https://")):
        return space if space.endswith("/") else space + "/"
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", space):
        raise InvalidRequestError("space", space, f"{space!r} is neither a Space id nor a URL.")
    subdomain = re.sub(r"[^a-z0-9]+", "-", space.lower()).strip("-")
    return f"https://{subdomain}.hf.space/"


def space_id_for(space: str) -> str | None:
    """The Space id behind ``space`` when known: an id, or the URL of ``DEFAULT_SPACE``."""
    if not space.startswith(("http://", "https://")):
        return space
    if space_url(space) == space_url(DEFAULT_SPACE):
        return DEFAULT_SPACE
    return None


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every request: gradio_client would otherwise build a new one (and
    load the CA bundle, ~30 ms of CPU) for each request and each file it downloads."""
    return httpx.create_ssl_context()


# --- the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpaceStatus:
    """What a quick look at the Space says, for the status line."""

    reachable: bool
    queue_size: int | None = None
    problem: str | None = None


@dataclass
class ClientSettings:
    """Everything needed to reach the Space; shared by the pool and the status check."""

    url: str
    space_id: str | None
    token: str | None
    proxy: str | None
    download_dir: Path
    connect_timeout: float
    read_timeout: float
    hub_url: str

    def httpx_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "timeout": httpx.Timeout(
                connect=self.connect_timeout,
                read=self.read_timeout,
                write=self.connect_timeout,
                pool=self.connect_timeout,
            )
        }
        if self.proxy:
            kwargs["proxy"] = self.proxy
        return kwargs

    def headers(self) -> dict[str, str]:
        # gradio_client sends the token as x-hf-authorization; the same for our own calls.
        return {"x-hf-authorization": f"Bearer {self.token}"} if self.token else {}


class SpaceClient:
    """A client for the Space's ``/infer``.

    ``space`` is a Space id (``owner/name``) or any Gradio app URL. ``token`` defaults to
    ``HF_TOKEN``; an environment token is sent only to Hugging Face hosts (``sd35.tokens``), so
    pointing the app at somebody else's server does not hand them your token. ``proxy`` (HTTP or
    HTTPS URL) is used for every request. ``timeout`` bounds a whole job, queue included.
    """

    def __init__(
        self,
        space: str = DEFAULT_SPACE,
        *,
        token: str | None = None,
        proxy: str | None = None,
        download_dir: str | Path | None = None,
        timeout: float = 900.0,
        connect_timeout: float = 20.0,
        read_timeout: float = 120.0,
        retries: int = 3,
        api_name: str = DEFAULT_API_NAME,
        hub_url: str | None = None,
    ) -> None:
        url = space_url(space)
        # The one token rule (sd35.tokens): a given token is explicit, HF_TOKEN is not.
        token = token_for(url, token, True) if token else token_for(url, environment_token(), False)
        self.space = space
        self.url = url
        #: Whether a token is sent (never the token itself).
        self.has_token = bool(token)
        self.api_name = api_name
        self.timeout = timeout
        self.retries = retries
        self.settings = ClientSettings(
            url=url,
            space_id=space_id_for(space),
            token=token,
            proxy=proxy,
            download_dir=Path(download_dir or tempfile.mkdtemp(prefix="sd35-downloads-")),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            hub_url=(hub_url or os.environ.get("SD35_HUB_URL") or DEFAULT_HUB_URL).rstrip("/"),
        )
        self._pool = _ClientPool(self.settings, api_name=api_name, retries=retries)
        self._schema: SpaceSchema | None = None
        self._schema_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token
        return f"SpaceClient({self.space!r}, token={'***' if self.has_token else None})"

    # -- schema and status ----------------------------------------------------------------------

    def schema(self) -> SpaceSchema:
        """The bounds the Space declares for ``/infer`` (read once, then cached)."""
        with self._schema_lock:
            if self._schema is None:
                client = self._pool.acquire()
                try:
                    info = client.view_api(print_info=False, return_format="dict")
                    assert isinstance(info, dict)
                    self._schema = SpaceSchema.from_api_info(info, self.api_name)
                finally:
                    self._pool.release(client, reusable=True)
            return self._schema

    def cached_schema(self) -> SpaceSchema:
        """The schema if it was read already, else the documented fallback (no network)."""
        return self._schema or SpaceSchema()

    def status(self) -> SpaceStatus:
        """A quick, cheap look: does the Space answer, and how long is its queue?"""
        settings = self.settings
        try:
            with httpx.Client(verify=shared_ssl_context(), **settings.httpx_kwargs()) as http:
                response = http.get(
                    urllib.parse.urljoin(settings.url, "gradio_api/queue/status"),
                    headers=settings.headers(),
                )
            if response.is_success:
                return SpaceStatus(True, queue_size=response.json().get("queue_size"))
            raise httpx.HTTPStatusError("status", request=response.request, response=response)
        except (httpx.HTTPError, ValueError) as exc:
            error = map_error(exc, settings, connecting=True)
            return SpaceStatus(False, problem=error.message)

    # -- generation -----------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        """Start nothing yet: return a ``Generation`` to iterate (sync or async) or cancel."""
        return Generation(self, request)

    def close(self) -> None:
        """Close idle connections (running generations keep theirs)."""
        self._pool.close()


class _ClientPool:
    """Idle ``gradio_client.Client`` objects, one per running job at most."""

    def __init__(
        self, settings: ClientSettings, *, api_name: str, retries: int, max_idle: int = 8
    ) -> None:
        self._settings = settings
        self._api_name = api_name
        self._retries = retries
        self._max_idle = max_idle
        self._idle: list[Client] = []
        self._lock = threading.Lock()

    def acquire(self) -> Client:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return with_retries(self._connect, self._retries)

    def release(self, client: Client, *, reusable: bool) -> None:
        with self._lock:
            if reusable and len(self._idle) < self._max_idle:
                self._idle.append(client)
                return
        client.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()

    def _connect(self) -> Client:
        settings = self._settings
        settings.download_dir.mkdir(parents=True, exist_ok=True)
        try:
            client = Client(
                settings.url,
                token=settings.token or False,  # False: never pick up a token implicitly
                verbose=False,
                httpx_kwargs=settings.httpx_kwargs(),
                download_files=str(settings.download_dir),
                analytics_enabled=False,
                ssl_verify=shared_ssl_context(),  # type: ignore[arg-type]  # httpx takes it
            )
        except Exception as exc:
            raise map_error(exc, settings, connecting=True) from None
        wake_on_arrival(client)
        info = client.view_api(print_info=False, return_format="dict")
        named = info.get("named_endpoints", {}) if isinstance(info, dict) else {}
        if self._api_name not in named:
            client.close()
            offered = ", ".join(sorted(named)) or "none"
            raise EndpointMissingError(
                f"The Space at {settings.url} has no {self._api_name} endpoint (it offers: "
                f"{offered}). Its API may have been renamed; point sd35 at a Space with the "
                "SD 3.5 API."
            )
        return client


def with_retries(action: Any, retries: int, *, base_delay: float = 0.5) -> Any:
    """Run ``action`` and retry transient failures (``SpaceUnavailableError`` of the
    unreachable kind) with exponential backoff; everything else propagates at once."""
    for attempt in range(retries + 1):
        try:
            return action()
        except SpaceUnavailableError as exc:
            transient = type(exc) is SpaceUnavailableError or isinstance(exc, SpaceBuildingError)
            if not transient or attempt == retries:
                raise
            time.sleep(backoff(base_delay, attempt + 1))
    raise AssertionError("unreachable")


def backoff(first: float, failures: int, cap: float = 8.0) -> float:
    """How long to wait after ``failures`` failures in a row: ``first``, doubling with each
    further failure, never more than ``cap``."""
    return min(first * 2 ** max(0, failures - 1), cap)


# --- one generation ----------------------------------------------------------------------------


@dataclass
class _JobState:
    client: Client | None = None
    job: GradioJob | None = None
    started_at: float = 0.0
    deadline: float = 0.0
    attempts: int = 0
    previews: int = 0
    last_progress: tuple[int, int] | None = None
    cancel_sent: bool = False
    cancelled_at: float | None = None
    #: Seconds to wait before submitting again (a transient failure), else None.
    retry_in: float | None = None
    finished: bool = False


#: After a cancel, how long the iterator waits for the Space to confirm before it gives up.
CANCEL_GRACE = 5.0


class Generation:
    """One run of ``/infer``: iterate it (``for`` or ``async for``) for events; ``cancel()``
    stops the remote job. Leaving the loop early cancels too. Iterate it once.

    Nothing here blocks an event loop: in ``async for`` the connection and submission run in
    a worker thread, and cancel requests are sent from a background thread.
    """

    def __init__(self, client: SpaceClient, request: GenerationRequest) -> None:
        self._space = client
        self.request = request
        self._state = _JobState()
        self._cancel_requested = threading.Event()
        self._lock = threading.Lock()
        #: The job whose updates and end wake ``_nap``, and the wake-up they set.
        self._watched: tuple[GradioJob, _Wakeup] | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancel_requested.is_set()

    def cancel(self) -> None:
        """Ask the Space to stop this job (returns at once); the iterator then ends without
        a result."""
        if not self._cancel_requested.is_set():
            self._cancel_requested.set()
            self._state.cancelled_at = time.monotonic()
            self._abandon(release=False)

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        try:
            self._start()
            while True:
                events, wait = self._poll()
                yield from events
                if self._state.finished:
                    return
                time.sleep(wait)
                if self._state.retry_in is not None:
                    self._submit()
        finally:
            self._finish()

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            await asyncio.to_thread(self._start)
            while True:
                events, wait = self._poll()
                for event in events:
                    yield event
                if self._state.finished:
                    return
                await self._nap(wait)
                if self._state.retry_in is not None:
                    await asyncio.to_thread(self._submit)
        finally:
            self._finish()

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds`` between two polls, or less: an update of the job or its end
        wakes it, so each is taken the moment it is there rather than at the next poll."""
        job = self._state.job
        if job is None or self._state.retry_in is not None:
            await asyncio.sleep(seconds)
            return
        if self._watched is None or self._watched[0] is not job:  # once per submitted job
            wakeup = _Wakeup(asyncio.get_running_loop())
            job.when_done(wakeup.set_threadsafe)
            wakeup.woken_by_updates = job.when_updated(wakeup.set_threadsafe)
            self._watched = (job, wakeup)
        wakeup = self._watched[1]
        # Woken by every update, the loop need not look often on its own: only the deadline
        # and a cancel's grace are left to check.
        if wakeup.woken_by_updates:
            seconds = max(seconds, WATCHED_POLL_INTERVAL)
        await wakeup.wait(seconds)

    def run(self) -> Result:
        """Iterate to the end and return the result (raises on failure or cancel)."""
        for event in self:
            if isinstance(event, Result):
                return event
        raise GenerationFailedError("The generation was cancelled before it finished.")

    # -- the state machine both iterators share ------------------------------------------------

    def _start(self) -> None:
        state = self._state
        state.started_at = time.monotonic()
        state.deadline = state.started_at + self._space.timeout
        self._submit()

    def _submit(self) -> None:
        """Connect (or reuse an idle connection) and submit; may block: call off the loop."""
        state = self._state
        state.retry_in = None
        if self.cancelled:
            state.finished = True
            return
        state.attempts += 1
        client = self._space._pool.acquire()
        with self._lock:
            state.client = client
            try:
                state.job = GradioJob(client, self._space.api_name, self.request.as_inputs())
            except Exception as exc:  # gradio_client checks arguments before sending
                state.finished = True
                raise map_error(exc, self._space.settings) from None
        if self.cancelled:  # cancel() came while we were connecting: nobody else will send it
            self._abandon(release=state.finished)

    def _poll(self) -> tuple[list[Event], float]:
        """Drain what arrived; return the events and how long to wait before the next poll.
        Never blocks."""
        state = self._state
        if state.finished or state.job is None:
            state.finished = True
            return [], 0.0
        job = state.job
        done = job.done()  # read before draining so no update that precedes "done" is missed
        events = _latest_only([e for update in job.updates() for e in self._translate(update)])
        if self.cancelled:
            gave_up = time.monotonic() > (state.cancelled_at or 0.0) + CANCEL_GRACE
            if done or gave_up or time.monotonic() > state.deadline:
                state.finished = True
            return [], POLL_INTERVAL
        if done:
            outcome = self._outcome(job)
            if outcome == "retry":
                self._release(reusable=False)
                state.retry_in = backoff(0.5, state.attempts)
                return events, state.retry_in
            events.append(outcome)
            state.finished = True
            return events, 0.0
        if time.monotonic() > state.deadline:
            self._cancel_requested.set()
            self._abandon(release=False)
            state.finished = True
            raise SpaceTimeoutError(
                f"No image after {self._space.timeout:.0f} s (queue included); the job was "
                "cancelled. The Space may be overloaded: try again later."
            )
        return events, POLL_INTERVAL

    def _translate(self, update: Any) -> list[Event]:
        state = self._state
        if isinstance(update, OutputUpdate):
            if update.final or not update.success:
                return []
            image = _first_file(update.outputs)
            if image is None:
                return []
            state.previews += 1
            return [Preview(Path(image), state.previews)]
        if not isinstance(update, StatusUpdate):
            return []
        if update.code == Status.IN_QUEUE:
            return [Queued(update.rank, update.queue_size, update.eta)]
        if update.code == Status.PROCESSING:
            return [Started()]
        if update.code == Status.PROGRESS and update.progress_data:
            unit = next((u for u in reversed(update.progress_data) if u.length), None)
            if unit is None or unit.index is None:
                return []
            step = (unit.index, unit.length or 0)
            if step == state.last_progress:
                return []
            state.last_progress = step
            return [Progress(step[0], step[1], unit.unit, unit.desc)]
        return []

    def _outcome(self, job: GradioJob) -> Result | str:
        """The final event of a finished job, or ``"retry"``; raises the mapped error."""
        state = self._state
        settings = self._space.settings
        try:
            output = job.result()
        except Exception as exc:
            # Nothing was accepted by the Space yet (no event id): safe to try again.
            retryable = isinstance(exc, httpx.TransportError) and job.event_id is None
            if retryable and state.attempts <= self._space.retries:
                return "retry"
            self._release(reusable=False)
            raise map_error(exc, settings) from None
        self._release(reusable=True)
        image, seed = _split_output(output)
        if image is None:
            raise GenerationFailedError(
                "The Space finished but sent no image. Try again, perhaps with another seed."
            )
        return Result(
            path=Path(image),
            seed=seed if seed is not None else self.request.seed,
            elapsed=time.monotonic() - state.started_at,
            request=self.request,
        )

    def _abandon(self, *, release: bool) -> None:
        """Send the cancel from a background thread (it may wait for the job's id and then
        makes a network call), and optionally give the connection up afterwards."""

        def work() -> None:
            self._send_cancel()
            if release:
                self._release(reusable=False)

        threading.Thread(target=work, name="sd35-cancel", daemon=True).start()

    def _send_cancel(self) -> None:
        """POST /cancel for our job through our own settings (proxy included), once."""
        with self._lock:
            state = self._state
            job = state.job
            if state.client is None or job is None or state.cancel_sent:
                return
            state.cancel_sent = True
        if job.wait_accepted(timeout=2.0) is None:
            return  # never accepted: there is nothing to cancel on the Space
        with contextlib.suppress(httpx.HTTPError):
            job.send_cancel(verify=shared_ssl_context(), **self._space.settings.httpx_kwargs())

    def _release(self, *, reusable: bool) -> None:
        with self._lock:
            client, self._state.client = self._state.client, None
        if client is not None:
            self._space._pool.release(client, reusable=reusable)

    def _finish(self) -> None:
        """Runs when iteration ends for any reason: a job still running (or still being
        submitted) is cancelled, and its connection given up once the cancel is sent."""
        state = self._state
        job = state.job
        running = job is not None and not job.done()
        if not state.finished or running:
            self._cancel_requested.set()  # a submission still in flight will see this
        if running:
            self._abandon(release=True)
        elif state.client is not None:
            self._release(reusable=not self.cancelled and job is not None)
        state.finished = True


class _Wakeup:
    """A wake-up call from another thread for a coroutine of ``loop`` that would otherwise
    sleep; a call that comes while nobody waits is kept for the next wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._called = loop.create_future()
        #: True once every update of the job calls this (not only its end).
        self.woken_by_updates = False

    def set_threadsafe(self) -> None:
        # gradio_client's threads may still report after the loop is gone (a caller that
        # left its loop): then nobody waits, and the job's own thread must not fail for it.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        if not self._called.done():
            self._called.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until the next call (or one that came since the last wait), at most ``timeout``."""
        if not self._called.done():
            await asyncio.wait([self._called], timeout=timeout)
        if self._called.done():
            self._called = self._loop.create_future()


def _latest_only(events: list[Event]) -> list[Event]:
    """Drop frames and progress that a newer one of the same kind in this batch supersedes
    (a slow consumer then gets the newest preview, never a backlog of stale ones)."""
    kept: list[Event] = []
    for index, event in enumerate(events):
        if isinstance(event, Preview | Progress | Queued) and any(
            type(later) is type(event) for later in events[index + 1 :]
        ):
            continue
        kept.append(event)
    return kept


def _first_file(outputs: Any) -> str | None:
    value = outputs[0] if isinstance(outputs, (list, tuple)) and outputs else outputs
    if isinstance(value, dict):
        value = value.get("path")
    return value if isinstance(value, str) and value else None


def _split_output(output: Any) -> tuple[str | None, int | None]:
    if isinstance(output, (list, tuple)):
        image = _first_file(output[0]) if output else None
        seed = output[1] if len(output) > 1 else None
    else:
        image, seed = _first_file(output), None
    try:
        seed_value = int(seed) if seed is not None else None
    except (TypeError, ValueError):
        seed_value = None
    return image, seed_value


# --- error mapping -----------------------------------------------------------------------------
#
# As httpx maps httpcore's exceptions to its own (one dict, one function that applies it), every
# failure from gradio_client, httpx or the OS becomes one sd35 error here: FOREIGN_ERRORS says
# what each foreign exception means, map_error applies it. A gr.Error raised by the Space is read
# by its words (SPACE_WORDINGS), a failure to reach the Space by the HTTP status (STATUS_ERRORS),
# the proxy and the Space's stage on the Hub (HUB_STAGES). Each message is written once: as the
# error class's ``default_message`` (sd35/errors.py) when its wording never varies, else in the
# one function here that builds it. See docs/space-api.md, "Failures and their wordings".

#: Turns one failure into an sd35 error, or None: "nothing specific, use the fallback".
Rule = Callable[[BaseException, ClientSettings], SD35Error | None]

_QUOTA = re.compile(r"exceeded your (?:free )?GPU quota|GPU quota exceeded|ZeroGPU quota", re.I)
_RETRY_IN = re.compile(r"retry in (\d+):(\d{1,2}):(\d{1,2})", re.I)
_OUT_OF_RANGE = re.compile(r"Value (\S+) is (less|greater) than (minimum|maximum) value (\S+)")
_HIDDEN_ERROR = re.compile(re.escape("has not enabled verbose error reporting"))
_TAG = re.compile(r"<[^>]+>")


def plain_text(html: str) -> str:
    """The Space's message without HTML tags or doubled spaces."""
    return re.sub(r"\s+", " ", _TAG.sub("", html)).strip()


def quota_error(message: str, *, has_token: bool) -> QuotaExceededError:
    """Build the quota error from the Space's text, reading the wait it names if any."""
    text = plain_text(message)
    match = _RETRY_IN.search(text)
    wait = None
    if match:
        hours, minutes, seconds = (int(g) for g in match.groups())
        wait = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return QuotaExceededError(text, retry_after=wait, has_token=has_token)


def _hidden_error(*_: object) -> GenerationFailedError:
    return GenerationFailedError(
        "The Space failed while generating and did not say why (it hides error details). "
        "Try again; if it keeps failing, the Space may be overloaded or broken."
    )


#: What the Space's own words in a ``gr.Error`` mean, first match wins:
#: (pattern, (match, plain text, settings) -> error).
SPACE_WORDINGS: tuple[tuple[re.Pattern[str], Callable[..., SD35Error]], ...] = (
    (_QUOTA, lambda _, text, settings: quota_error(text, has_token=bool(settings.token))),
    (
        _OUT_OF_RANGE,
        lambda match, text, _: InvalidRequestError(
            "request", match.group(1), f"The Space rejected a value: {text}"
        ),
    ),
    (_HIDDEN_ERROR, _hidden_error),
)


def map_app_error(message: str | None, settings: ClientSettings) -> SD35Error:
    """Turn the text of a remote ``gr.Error`` into the matching sd35 error."""
    text = redact(plain_text(message or ""), settings.token)
    for pattern, build in SPACE_WORDINGS:
        if match := pattern.search(text):
            return build(match, text, settings)
    if not text:
        return _hidden_error()
    return GenerationFailedError(f"The Space reported an error: {text}", space_message=text)


def _too_many(*_: object) -> QueueFullError:
    return QueueFullError(
        "The Space is turning requests away (too many requests). Wait a minute and try again."
    )


def _refused(_: object, settings: ClientSettings) -> SpaceUnavailableError:
    return SpaceUnavailableError(
        f"The Space at {settings.url} refused access. It may be private or gated: "
        "set a Hugging Face token (HF_TOKEN) that may use it."
    )


def _rejected(exc: BaseException, settings: ClientSettings) -> InvalidRequestError:
    text = redact(str(exc), settings.token)
    return InvalidRequestError("request", None, f"The Space rejected the request: {text}")


def _unexpected(exc: BaseException, settings: ClientSettings) -> GenerationFailedError:
    text = redact(str(exc), settings.token)
    return GenerationFailedError(f"Unexpected failure talking to the Space: {text}")


#: What an HTTP status means when the Space (or a server in front of it) answers with it.
STATUS_ERRORS: dict[int, Callable[[BaseException, ClientSettings], SpaceError]] = {
    429: _too_many,
    401: _refused,
    403: _refused,
}


def _stage_error(stage: str) -> SpaceError | None:
    """What the Space's runtime stage on the Hub means, or None for a stage that explains
    nothing (e.g. RUNNING)."""
    if stage.endswith("ERROR"):
        return SpacePausedError(
            f"The Space is broken ({stage.replace('_', ' ').lower()}); only its owner can fix it. "
            "Try another Space with --space."
        )
    error = HUB_STAGES.get(stage)
    return error() if error else None


#: The Hub's runtime stages of a Space that explain why it does not answer (each error's
#: message is its ``default_message``); any stage ending in ERROR means broken.
HUB_STAGES: dict[str, type[SpaceError]] = {
    "SLEEPING": SpaceSleepingError,
    "BUILDING": SpaceBuildingError,
    "APP_STARTING": SpaceBuildingError,
    "RUNNING_BUILDING": SpaceBuildingError,
    "RUNNING_APP_STARTING": SpaceBuildingError,
    "PAUSED": SpacePausedError,
    "STOPPED": SpacePausedError,
}


def _unreachable(exc: BaseException, settings: ClientSettings) -> SpaceError:
    """Explain a failure to reach the Space: the HTTP status it answered, the proxy, its stage
    on the Hub (asked only for a known Space id), a timeout, or plainly unreachable."""
    status = _status_of(exc)
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status](exc, settings)
    if settings.proxy and (isinstance(exc, httpx.ProxyError) or not _proxy_answers(settings.proxy)):
        return ProxyError(
            f"Could not reach the Space through the proxy {_without_credentials(settings.proxy)}: "
            "the proxy is not answering. Check the proxy address or run without it."
        )
    stage = _space_stage(settings)
    if stage and (error := _stage_error(stage)):
        return error
    if isinstance(exc, httpx.TimeoutException):
        return SpaceUnavailableError(
            f"The Space at {settings.url} did not answer in time. It may be overloaded or waking "
            "up: try again in a minute."
        )
    detail = f" (HTTP {status})" if status else ""
    return SpaceUnavailableError(
        f"Could not reach the Space at {settings.url}{detail}. Check your connection; the Space "
        "may be down."
    )


def _server_stopped(exc: BaseException, settings: ClientSettings) -> SD35Error | None:
    # gradio_client raises ValueError("Server stopped ...") when the stream ends without a
    # result; any other ValueError says nothing by its type.
    return ConnectionLostError() if "Server stopped" in str(exc) else None


#: What each foreign exception means: an sd35 error class (whose default message says it all)
#: or a rule that reads the exception. The most specific class wins (the first of the
#: exception's MRO found here); a rule that returns None leaves it to ``map_error``'s fallback.
FOREIGN_ERRORS: dict[type[BaseException], type[SD35Error] | Rule] = {
    SD35Error: lambda exc, _: exc if isinstance(exc, SD35Error) else None,  # already ours
    AppError: lambda exc, settings: map_app_error(getattr(exc, "message", None), settings),
    ValidationError: _rejected,  # gradio_client refused the arguments before sending
    QueueError: QueueFullError,  # HTTP 503 "Queue is full" when joining the queue
    TooManyRequestsError: _too_many,
    AuthenticationError: _refused,
    # gradio_client's ways of saying the stream dropped: a cancelled future, or a KeyError on
    # the completion message that never came.
    concurrent.futures.CancelledError: ConnectionLostError,
    KeyError: ConnectionLostError,
    ValueError: _server_stopped,
    httpx.HTTPError: _unreachable,
    OSError: _unreachable,
}


def map_error(
    exc: BaseException, settings: ClientSettings, *, connecting: bool = False
) -> SD35Error:
    """The one sd35 error for ``exc``, by ``FOREIGN_ERRORS``. What the table does not explain
    means "could not reach the Space" while ``connecting``, else an unexpected failure."""
    for cls in type(exc).__mro__:
        if cls in FOREIGN_ERRORS:
            meaning = FOREIGN_ERRORS[cls]
            if isinstance(meaning, type):
                return meaning()
            if (error := meaning(exc, settings)) is not None:
                return error
            break
    return _unreachable(exc, settings) if connecting else _unexpected(exc, settings)


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    match = re.search(r"\b(4\d\d|5\d\d)\b", str(exc)) if isinstance(exc, ValueError) else None
    return int(match.group(1)) if match else None


def _proxy_answers(proxy: str) -> bool:
    parts = urllib.parse.urlsplit(proxy)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=3):
            return True
    except OSError:
        return False


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _space_stage(settings: ClientSettings) -> str | None:
    """The Space's runtime stage from the Hub API, or None when unknown (no id, no answer)."""
    if settings.space_id is None:
        return None
    try:
        response = httpx.get(
            f"{settings.hub_url}/api/spaces/{settings.space_id}/runtime",
            headers={"authorization": f"Bearer {settings.token}"} if settings.token else {},
            **settings.httpx_kwargs(),
        )
        if response.is_success:
            stage = response.json().get("stage")
            return str(stage) if stage else None
    except (httpx.HTTPError, ValueError):
        pass
    return None


__all__ = [
    "DEFAULT_SPACE",
    "Event",
    "Generation",
    "Preview",
    "Progress",
    "Queued",
    "Result",
    "SpaceClient",
    "SpaceError",
    "SpaceStatus",
    "Started",
    "space_url",
]
