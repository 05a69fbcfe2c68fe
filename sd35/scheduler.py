"""The one scheduler of the app process: runs the stored jobs (``sd35.jobs``) on backends.

* Up to ``concurrency`` jobs at once. Order: first in, first out within a user; round-robin
  between users (each start goes to the next user, in name order, who has a runnable job), so
  one user's 50 jobs do not starve another's one.
* **Backends** are any objects with ``name`` (a spec without secrets, e.g.
  ``"space:stabilityai/stable-diffusion-3-5-large"``) and ``generate(request)`` returning an
  async-iterable generation of ``sd35.space_client`` events with ``cancel()``
  (``sd35.backends``: a Space, an Inference Provider or Endpoint). Each has a
  ``BackendState``: while it is paused (``retry_at``, ``reason``) no job is sent to it. The
  job records which backend ran it.
* **Quota** (``QuotaExceededError``): the job goes back to ``waiting`` and the backend pauses
  until the time the Space names ("retry in H:MM:SS"), else for ``RetryPolicy.quota_first``
  (10 min) doubling with each refusal in a row up to ``quota_max`` (2 h). After a pause, one
  job probes the backend before the others follow.
* **Transient** failures (unreachable, asleep, queue full, connection lost, generation
  failed, timeout) wait ``transient_first`` (15 s) doubling up to ``transient_max`` (5 min),
  ``transient_attempts`` (4) times, then the job fails with the last message. **Permanent**
  ones (invalid request, endpoint missing, Space paused by its owner) fail the job at once.
* A job is run by ``runner(job, backend)`` (``start_queue`` passes ``Studio.run``), which yields the
  backend's events and finally a ``Saved``; the job is marked done with the saved image's id.

The scheduler runs its own event loop in a thread; its public methods are thread-safe and
return at once. Listeners (``watch``) receive every event of every job, on their own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sd35.backends import failover
from sd35.backends.failover import BACKEND_ERRORS, PERMANENT_ERRORS, RetryPolicy
from sd35.errors import GenerationFailedError, QuotaExceededError, SD35Error
from sd35.jobs import PENDING, RUNNING, Job, JobStore
from sd35.params import GenerationRequest
from sd35.space_client import Result
from sd35.studio import Saved

log = logging.getLogger(__name__)


class Backend(Protocol):
    """Where jobs run: a name without secrets and ``generate(request)``."""

    name: str

    def generate(self, request: GenerationRequest) -> Any: ...


Runner = Callable[[Job, Backend], AsyncIterator[Any]]


@dataclass
class BackendState:
    """Whether a backend takes jobs now: paused until ``retry_at`` for ``reason``."""

    backend: Backend
    retry_at: float | None = None
    reason: str | None = None
    quota_streak: int = 0
    #: After a pause, one job tries the backend alone before others are sent.
    probing: bool = False
    running: int = 0
    #: Why it is paused, for display (``sd35.backends.failover``: waiting, out_of_credits, …).
    kind: str = "waiting"

    def paused(self, now: float) -> bool:
        return self.retry_at is not None and self.retry_at > now

    def available(self, now: float) -> bool:
        return not self.paused(now) and not (self.probing and self.running > 0)

    def pause(self, until: float, reason: str) -> None:
        self.retry_at = max(until, self.retry_at or 0.0)
        self.reason = reason
        self.probing = True

    def succeeded(self) -> None:
        self.retry_at, self.reason, self.quota_streak, self.probing = None, None, 0, False


@dataclass(frozen=True)
class JobChanged:
    """A job's stored state changed (it is the job as stored now, or None if deleted)."""

    job: Job | None


@dataclass(frozen=True)
class BackendPause:
    """A paused backend, for display."""

    name: str
    retry_at: float
    reason: str


class Scheduler:
    """Runs the jobs of ``store`` on ``backends`` through ``runner``."""

    def __init__(
        self,
        store: JobStore,
        backends: Sequence[Backend],
        runner: Runner,
        *,
        concurrency: int = 1,
        max_queue: int | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        prune_every: float = 3600.0,
        pins: Any = None,
    ) -> None:
        if not backends:
            raise ValueError("the scheduler needs at least one backend")
        self.store = store
        self.states = [BackendState(backend) for backend in backends]
        self.runner = runner
        self.concurrency = max(1, int(concurrency))
        self.max_queue = max_queue
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.prune_every = prune_every
        #: Jobs pinned to one backend (``sd35.backends.pins.JobPins``), if any.
        self.pins = pins
        self._paused_owners = store.paused_owners()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, Any] = {}
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]] = []
        self._listeners_lock = threading.Lock()
        self._last_owner: tuple[bool, str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._pruned_at = 0.0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, find_image: Callable[[str], str | None] | None = None) -> Scheduler:
        """Recover from a crash (see ``JobStore.recover``), prune old rows, and start."""
        if find_image is not None:
            done, requeued = self.store.recover(find_image)
            if done or requeued:
                log.info("jobs after a restart: %d already done, %d queued again", done, requeued)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="sd35-scheduler", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop starting jobs; running ones are cancelled (remotely too) and queued again."""
        self._stopping = True
        self._kick()
        if self._thread is not None:
            self._thread.join(timeout)

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._wake = asyncio.Event()
        ready.set()
        while not self._stopping:
            self._wake.clear()
            try:
                self._maintain()
                self._fill()
            except Exception:  # never let one bad row or a full disk stop the scheduler
                log.exception("scheduler step failed")
            delay = self._next_wake() - self.clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, delay))
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _kick(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop just closed
                loop.call_soon_threadsafe(wake.set)

    def _maintain(self) -> None:
        now = self.clock()
        if now - self._pruned_at >= self.prune_every:
            self._pruned_at = now
            self.store.prune()

    def _next_wake(self) -> float:
        now = self.clock()
        times = [now + 60.0]
        times += [s.retry_at for s in self.states if s.retry_at is not None and s.retry_at > now]
        due = self.store.next_due()
        if due is not None:
            times.append(due)
        return min(times)

    # --- choosing and running ----------------------------------------------------------------

    def _fill(self) -> None:
        while len(self._tasks) < self.concurrency and not self._stopping:
            now = self.clock()
            if not any(s.available(now) for s in self.states):
                return
            heads = self.store.heads(now, skip_owners=tuple(self._paused_owners))
            if not heads:
                return
            job = self._next_in_turn(heads)
            self._last_owner = _owner_key(job.owner)
            if job.problem is not None or job.request is None:
                self.store.mark_failed(job.id, "Unreadable job", job.problem or "No request.")
                self._changed(job.id)
                continue
            # Failover: the first backend in order that may take this job (issue 16).
            state = failover.choose(self.states, now, self._pin(job.id))
            if state is None:  # pinned to a paused backend: wait for it
                due = failover.next_try(self.states, now, self._pin(job.id), recheck=60.0)
                self.store.mark_waiting(job.id, due, f"Waiting for {self._pin(job.id)}")
                self._changed(job.id)
                continue
            if not self.store.start(job.id, state.backend.name):
                continue  # cancelled meanwhile
            state.running += 1
            assert self._loop is not None
            self._tasks[job.id] = self._loop.create_task(self._run_job(job, state))
            self._changed(job.id)

    def _next_in_turn(self, heads: list[Job]) -> Job:
        """The head of the next user after the one served last (round-robin)."""
        if self._last_owner is not None:
            for job in heads:
                if _owner_key(job.owner) > self._last_owner:
                    return job
        return heads[0]

    async def _run_job(self, job: Job, state: BackendState) -> None:
        saved: Saved | None = None
        try:
            assert job.request is not None
            async for event in self.runner(job, state.backend):
                self._live[job.id] = event
                self._publish(job.id, event)
                if isinstance(event, Result):
                    state.succeeded()
                elif isinstance(event, Saved):
                    saved = event
            if saved is None:
                raise GenerationFailedError("The generation ended without an image.")
            self.store.mark_done(job.id, saved.image.id, f"done on {state.backend.name}")
        except asyncio.CancelledError:
            if saved is not None:
                self.store.mark_done(job.id, saved.image.id, "done")
            elif self._stopping:
                self.store.requeue(job.id, "interrupted by a shutdown, queued again")
            else:
                self.store.cancel(job.id, include_running=True)
        except QuotaExceededError as error:
            self._publish(job.id, error)  # followers show the Space's words with the wait
            if not self._reroute(job, state, error):
                self._quota(job, state, error)
        except PERMANENT_ERRORS as error:
            if not self._reroute(job, state, error):
                self.store.mark_failed(job.id, error.title, error.message)
        except SD35Error as error:
            if not self._reroute(job, state, error):
                self._transient(job, state, error)
        except Exception as error:  # a bug must fail this job only, with a message
            log.exception("job %s failed unexpectedly", job.id)
            self.store.mark_failed(
                job.id, "Internal error", f"The studio failed running this job ({error!r})."
            )
        finally:
            state.running -= 1
            self._tasks.pop(job.id, None)
            self._live.pop(job.id, None)
            self._changed(job.id)
            if self._wake is not None:
                self._wake.set()

    def _pin(self, job_id: str) -> str | None:
        return self.pins.get(job_id) if self.pins is not None else None

    def _reroute(self, job: Job, state: BackendState, error: SD35Error) -> bool:
        """Failover (``sd35.backends.failover``): pause the failing backend with its own retry
        time and send the job on to the next backend that can take it, or, when every backend
        is paused by quota or credits, let it wait for the earliest retry. False leaves the
        job to the policy above (no other backend, or a failure of this job alone)."""
        now = self.clock()
        if failover.pause_for(error, now, quota_delay=0, transient_delay=0) is None:
            return False
        pin = self._pin(job.id)
        others = [s for s in self.states if s is not state and pin in (None, s.backend.name)]
        streak = state.quota_streak + (0 if state.paused(now) else 1)
        pause = failover.pause_for(
            error,
            now,
            quota_delay=self.policy.quota_delay(streak),
            transient_delay=self.policy.transient_delay(1),
        )
        assert pause is not None
        if not others and pause.kind != failover.NO_CREDITS:
            state.kind = pause.kind
            return False  # the only backend: the policy above, as before
        if isinstance(error, QuotaExceededError) and not state.paused(now):
            state.quota_streak = streak
        state.pause(pause.until, pause.reason)
        state.kind = pause.kind
        due = failover.next_try(self.states, now, pin, recheck=self.policy.quota_max)
        if due > now and pause.kind == failover.UNREACHABLE:
            return False  # everything is down: the transient policy counts the tries
        if (
            due > now
            and pause.kind == failover.UNUSABLE
            and all(s.kind == failover.UNUSABLE and s.paused(now) for s in others)
        ):
            return False  # nothing will ever take it without the user
        if due <= now:  # another backend takes it now: back in the queue, in its place
            self.store.requeue(job.id, f"{state.backend.name}: {error.title}; to the next backend")
            return True
        reason = f"{state.backend.name}: {error.title}; waiting for the first backend back"
        self.store.mark_waiting(job.id, due, reason, retries=job.retries)
        return True

    def _quota(self, job: Job, state: BackendState, error: QuotaExceededError) -> None:
        now = self.clock()
        if error.retry_after is not None:
            until = now + error.retry_after.total_seconds()
        else:
            if not state.paused(now):
                state.quota_streak += 1
            until = now + self.policy.quota_delay(max(1, state.quota_streak))
        state.pause(until, f"GPU quota: {error.space_message}")
        self.store.mark_waiting(job.id, until, f"Waiting for GPU quota ({error.space_message})")

    def _transient(self, job: Job, state: BackendState, error: SD35Error) -> None:
        failures = job.retries + 1
        if failures >= self.policy.transient_attempts:
            self.store.mark_failed(job.id, error.title, error.message)
            return
        until = self.clock() + self.policy.transient_delay(failures)
        if isinstance(error, BACKEND_ERRORS):
            state.pause(until, f"{error.title}: {error.message}")
        reason = (
            f"{error.title}: {error.message} (try {failures + 1} of "
            f"{self.policy.transient_attempts} next)"
        )
        self.store.mark_waiting(job.id, until, reason, retries=failures)

    # --- listeners ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def watch(self) -> Iterator[asyncio.Queue[tuple[str, Any]]]:
        """Within the running event loop: a queue receiving ``(job_id, event)`` for every
        backend event of every job, and ``(job_id, JobChanged)`` on each change of state."""
        entry = (asyncio.get_running_loop(), asyncio.Queue())
        with self._listeners_lock:
            self._listeners.append(entry)
        try:
            yield entry[1]
        finally:
            with self._listeners_lock:
                self._listeners.remove(entry)

    def _publish(self, job_id: str, item: Any) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for loop, queue in listeners:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(queue.put_nowait, (job_id, item))

    def _changed(self, job_id: str) -> None:
        self._publish(job_id, JobChanged(self.store.get(job_id)))

    # --- what callers do (thread-safe) -------------------------------------------------------

    def submit(
        self,
        requests: Sequence[GenerationRequest],
        *,
        owner: str | None,
        source: str,
        backend: str | None = None,
    ) -> list[Job]:
        """Store the jobs (committed when this returns) and let the scheduler know. With
        ``backend`` (a backend's name) the jobs run there only."""
        if backend and self.pins is not None:
            failover.check_pin(backend, [s.backend.name for s in self.states])
        jobs = self.store.add(requests, owner=owner, source=source, max_queue=self.max_queue)
        if backend and self.pins is not None:
            self.pins.pin([job.id for job in jobs], backend)
        self._kick()
        return jobs

    def cancel(self, job_id: str, owner: Any = ...) -> bool:
        """Cancel a pending or running job (a running one's remote job is cancelled too)."""
        job = self.store.get(job_id, owner)
        if job is None or not self.store.cancel(job_id, include_running=True):
            return False
        if job.state == RUNNING and self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._cancel_task, job_id)
        self._changed(job_id)
        self._kick()
        return True

    def _cancel_task(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()

    def move_to_top(self, job_id: str, owner: Any = ...) -> bool:
        return self._owned(job_id, owner) and self._did(job_id, self.store.move_to_top(job_id))

    def retry(self, job_id: str, owner: Any = ...) -> bool:
        return self._owned(job_id, owner) and self._did(job_id, self.store.retry(job_id))

    def try_now(self, owner: Any = ...) -> int:
        """End every backend pause and make the owner's waiting jobs due now."""
        now = self.clock()
        for state in self.states:
            if state.paused(now):
                state.retry_at = now
        count = self.store.try_now(owner)
        self._kick()
        return count

    def pause(self, owner: str | None) -> None:
        """Start no more jobs of ``owner`` (running ones finish); kept across restarts."""
        self.store.set_paused(owner, True)
        self._paused_owners = self.store.paused_owners()

    def resume(self, owner: str | None) -> None:
        self.store.set_paused(owner, False)
        self._paused_owners = self.store.paused_owners()
        self._kick()

    def is_paused(self, owner: str | None) -> bool:
        return owner in self._paused_owners

    def clear(self, owner: Any = ...) -> int:
        """Cancel the owner's pending jobs and forget the finished ones (images stay)."""
        count = self.store.clear(owner)
        self._kick()
        return count

    def live(self, job_id: str) -> Any:
        """The latest event of a running job (e.g. ``Progress``), or None."""
        return self._live.get(job_id)

    def pauses(self) -> list[BackendPause]:
        now = self.clock()
        return [
            BackendPause(s.backend.name, s.retry_at, s.reason or "")
            for s in self.states
            if s.retry_at is not None and s.paused(now)
        ]

    def idle(self, owner: Any = ...) -> bool:
        """True when ``owner`` has nothing queued, waiting or running."""
        return self.store.count(owner, states=(*PENDING, RUNNING)) == 0

    def _owned(self, job_id: str, owner: Any) -> bool:
        return self.store.get(job_id, owner) is not None

    def _did(self, job_id: str, changed: bool) -> bool:
        if changed:
            self._changed(job_id)
            self._kick()
        return changed


def _owner_key(owner: str | None) -> tuple[bool, str]:
    return (owner is not None, owner or "")


def start_queue(studio: Any, *, concurrency: int, max_queue: int | None) -> Scheduler:
    """The app's queue over ``studio.backends``: jobs in the gallery's file, each run through
    ``Studio.run`` (so images are saved with the job id); recovered, started, and given to
    the studio (``Studio.use_queue``), which submits to it."""
    from sd35.backends.pins import JobPins
    from sd35.jobs import image_finder

    store = JobStore.for_gallery(studio.store)

    def runner(job: Job, backend: Backend) -> AsyncIterator[Any]:
        assert job.request is not None
        return studio.run(job.request, job.owner, backend=backend, job_id=job.id)

    scheduler = Scheduler(
        store,
        studio.backends,
        runner,
        concurrency=concurrency,
        max_queue=max_queue,
        pins=JobPins(store.path),
    )
    studio.use_queue(scheduler)
    return scheduler.start(find_image=image_finder(studio.store.index_path))
