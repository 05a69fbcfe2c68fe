"""Failover for callers that run a request at once rather than through the queue (the page's
direct path, the synchronous APIs, MCP and the CLI): every configured backend as one
(``Studio.run`` builds it over ``Studio.backend_states``).

It shares the per-backend states with the scheduler when there is one, so a pause learned by
the queue is respected here and the other way round. A backend that fails with quota, credits
or unavailable is paused and the next one is tried at once; when none is left the caller gets
``AllBackendsPausedError`` (a ``QuotaExceededError``: 429 with ``Retry-After`` on the APIs)
naming each backend's reason, and nothing is left behind to run later.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from sd35.backends import failover
from sd35.backends.errors import AllBackendsPausedError
from sd35.errors import SD35Error
from sd35.params import GenerationRequest
from sd35.space_client import Event


class FailoverBackend:
    """``states()`` gives the per-backend states in failover order (each with ``backend``,
    ``retry_at``, ``reason``, ``kind``, ``pause()`` and ``available()``)."""

    name = "failover"
    space = ""

    def __init__(
        self, states: Callable[[], Sequence[Any]], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._states = states
        self._clock = clock

    def generate(self, request: GenerationRequest, pin: str | None = None) -> FailoverGeneration:
        return FailoverGeneration(self, request, pin)


class FailoverGeneration:
    """Runs on the first usable backend; on a pausing failure, on the next."""

    def __init__(self, owner: FailoverBackend, request: GenerationRequest, pin: str | None):
        self._owner = owner
        self.request = request
        self._pin = pin
        self._current: Any = None
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True
        if self._current is not None:
            self._current.cancel()

    def _next(self, tried: list[Any], last: SD35Error | None) -> Any:
        now = self._owner._clock()
        for state in self._owner._states():
            if all(state is not t for t in tried) and failover.usable(state, now, self._pin):
                tried.append(state)
                return state
        allowed = [s for s in self._owner._states() if self._pin in (None, s.backend.name)]
        if last is not None and len(allowed) == 1:
            raise last  # one backend: its own error, as without failover
        raise _exhausted(allowed, now)

    def _failed(self, state: Any, error: SD35Error) -> None:
        """Pause ``state`` for ``error``, or re-raise it when it concerns this request alone."""
        now = self._owner._clock()
        pause = failover.pause_for(error, now)  # the first wait of ``failover.RetryPolicy``
        if pause is None:
            raise error
        state.pause(pause.until, pause.reason)
        state.kind = pause.kind

    def __iter__(self) -> Iterator[Event]:
        tried: list[Any] = []
        last: SD35Error | None = None
        while not self._cancelled:
            state = self._next(tried, last)
            self._current = state.backend.generate(self.request)
            events = iter(self._current)
            try:
                yield from events
                return
            except SD35Error as error:
                last = error
                self._failed(state, error)
            finally:
                getattr(events, "close", lambda: None)()

    async def __aiter__(self) -> AsyncIterator[Event]:
        tried: list[Any] = []
        last: SD35Error | None = None
        while not self._cancelled:
            state = self._next(tried, last)
            self._current = state.backend.generate(self.request)
            events = self._current.__aiter__()
            try:
                async for event in events:
                    yield event
                return
            except SD35Error as error:
                last = error
                self._failed(state, error)
            finally:
                await events.aclose()


def _exhausted(states: Sequence[Any], now: float) -> AllBackendsPausedError:
    """The error when no backend can take the request now, naming each one's reason and the
    earliest automatic retry (none when all wait for the user)."""
    automatic = (failover.WAITING, failover.UNREACHABLE)
    times = [s.retry_at for s in states if getattr(s, "kind", failover.WAITING) in automatic]
    times = [t for t in times if t is not None and t > now]
    wait = timedelta(seconds=min(times) - now) if times else None
    reasons = "; ".join(f"{s.backend.name}: {s.reason or 'busy'}" for s in states)
    return AllBackendsPausedError(
        f"Every backend is paused ({reasons})", retry_after=wait, has_token=True
    )
