"""Failover between backends: which failures pause a backend, for how long, where a job goes
next, and how each backend's state reads. Pure functions over the scheduler's per-backend
states (``sd35.scheduler.BackendState``: ``backend``, ``retry_at``, ``reason``, ``kind``), so
the scheduler keeps only a few lines of its own.

A job goes to the first backend, in the configured order, that is not paused (or to the one it
is pinned to). A quota, credits, rate-limit or unavailable error pauses that backend with its
own retry time and sends the job on to the next one at once; when every backend is paused, the
job waits for the earliest retry. Credits (HTTP 402) and configuration errors (no permission,
model not served, endpoint missing) have no retry time: that backend stays out until the user
resumes it ("Try now").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sd35.backends.errors import BackendAuthError, CreditsExhaustedError
from sd35.errors import (
    EndpointMissingError,
    InvalidRequestError,
    QueueFullError,
    QuotaExceededError,
    SD35Error,
    SpacePausedError,
    SpaceUnavailableError,
)
from sd35.space_client import backoff

#: Far enough to mean "until the user resumes it", yet a finite time every display can format.
UNTIL_RESUMED = 365 * 24 * 3600.0

#: Backend states, as ``GET /api/v1/backends`` and the page name them.
READY, WAITING, NO_CREDITS, UNREACHABLE, UNUSABLE = (
    "ready",
    "waiting",
    "out_of_credits",
    "unreachable",
    "unusable",
)

#: Failures that retrying cannot fix: the queue fails the job at once.
PERMANENT_ERRORS: tuple[type[SD35Error], ...] = (
    InvalidRequestError,
    EndpointMissingError,
    SpacePausedError,
)
#: Transient failures that concern the whole backend (it pauses), not just one job.
BACKEND_ERRORS: tuple[type[SD35Error], ...] = (SpaceUnavailableError, QueueFullError)

#: Failures that say the backend cannot serve anything until its configuration changes.
CONFIG_ERRORS: tuple[type[SD35Error], ...] = (
    BackendAuthError,
    EndpointMissingError,
    SpacePausedError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before trying again (seconds): the one backoff of the queue, the
    direct failover and the CLI's ``--wait-quota``. Tests shorten these."""

    #: After a quota refusal that names no time: the first wait, doubling up to the longest.
    quota_first: float = 600.0
    quota_max: float = 7200.0
    #: After a transient failure (unreachable, asleep, connection lost, …): likewise.
    transient_first: float = 15.0
    transient_max: float = 300.0
    #: Tries before a transient failure fails the job.
    transient_attempts: int = 4

    def quota_delay(self, streak: int) -> float:
        """The wait after the ``streak``-th quota refusal in a row (no time named)."""
        return backoff(self.quota_first, streak, self.quota_max)

    def transient_delay(self, failures: int) -> float:
        return backoff(self.transient_first, failures, self.transient_max)


@dataclass(frozen=True)
class Pause:
    """What a failure does to its backend: pause it until ``until`` (epoch seconds)."""

    until: float
    kind: str
    reason: str


def pause_for(
    error: SD35Error,
    now: float,
    *,
    quota_delay: float = RetryPolicy.quota_first,
    transient_delay: float = RetryPolicy.transient_first,
) -> Pause | None:
    """The pause a failure puts on its backend, or None when it concerns the job alone
    (a bad request, or a failure while generating that another try may not repeat)."""
    if isinstance(error, InvalidRequestError):
        return None
    if isinstance(error, CreditsExhaustedError):
        return Pause(now + UNTIL_RESUMED, NO_CREDITS, error.message)
    if isinstance(error, CONFIG_ERRORS):
        return Pause(now + UNTIL_RESUMED, UNUSABLE, error.message)
    if isinstance(error, QuotaExceededError):
        wait = error.retry_after.total_seconds() if error.retry_after else quota_delay
        return Pause(now + wait, WAITING, error.message)
    if isinstance(error, SpaceUnavailableError | QueueFullError):
        return Pause(now + transient_delay, UNREACHABLE, error.message)
    return None


def usable(state: Any, now: float, pin: str | None) -> bool:
    """Whether ``state``'s backend may take a job pinned to ``pin`` (None: any) now."""
    return (pin is None or state.backend.name == pin) and state.available(now)


def choose(states: Sequence[Any], now: float, pin: str | None = None) -> Any | None:
    """The first state, in order, whose backend may take the job now."""
    return next((s for s in states if usable(s, now, pin)), None)


def next_try(states: Sequence[Any], now: float, pin: str | None, *, recheck: float) -> float:
    """When a job whose backend just failed should try again: now when another backend can
    take it, else the earliest retry of those it may use (at most ``recheck`` away, so a job
    whose backends all wait for the user is looked at again now and then)."""
    allowed = [s for s in states if pin is None or s.backend.name == pin]
    if any(s.available(now) for s in allowed):
        return now
    times = [s.retry_at for s in allowed if s.retry_at is not None and s.retry_at > now]
    return min([*times, now + recheck])


def check_pin(name: str, names: Sequence[str]) -> None:
    """Raise ``InvalidRequestError`` (field ``backend``) unless ``name`` is configured."""
    if name not in names:
        raise InvalidRequestError(
            "backend", name, f"No backend {name!r} is configured; use one of: {', '.join(names)}."
        )


def describe(state: Any, now: float | None = None) -> dict[str, Any]:
    """One backend's state for people and ``GET /api/v1/backends`` (never a token)."""
    now = time.time() if now is None else now
    backend = state.backend
    capabilities = getattr(backend, "capabilities", None)
    paused = state.retry_at is not None and state.retry_at > now
    kind = getattr(state, "kind", WAITING) if paused else READY
    automatic = paused and kind in (WAITING, UNREACHABLE)
    retry = datetime.fromtimestamp(state.retry_at).astimezone() if automatic else None
    info: dict[str, Any] = {
        "name": backend.name,
        "state": kind,
        "retry_at": retry.isoformat(timespec="seconds") if retry else None,
        "reason": state.reason if paused else None,
        "can_bill": bool(getattr(capabilities, "can_bill", False)),
        "running": getattr(state, "running", 0),
    }
    if capabilities is not None:
        bounds = capabilities.bounds
        info["capabilities"] = {
            "previews": capabilities.previews,
            "step_progress": capabilities.step_progress,
            "cancel": capabilities.cancel,
            "width": [bounds.width.minimum, bounds.width.maximum, bounds.width.step],
            "height": [bounds.height.minimum, bounds.height.maximum, bounds.height.step],
            "guidance_scale": [bounds.guidance_scale.minimum, bounds.guidance_scale.maximum],
            "num_inference_steps": [
                bounds.num_inference_steps.minimum,
                bounds.num_inference_steps.maximum,
            ],
        }
    return info


_LABELS = {
    READY: "🟢 ready",
    WAITING: "🟠 waiting",
    NO_CREDITS: "🔴 out of credits",
    UNREACHABLE: "🟠 unreachable",
    UNUSABLE: "🔴 not usable",
}


def state_lines(states: Sequence[Any], now: float | None = None) -> str:
    """Markdown, one line per backend, for the panel beside the form."""
    lines = []
    for state in states:
        info = describe(state, now)
        label = _LABELS.get(info["state"], info["state"])
        when = ""
        if info["retry_at"]:
            when = f" until {datetime.fromisoformat(info['retry_at']):%H:%M}"
        bill = " · 💳 bills your account" if info["can_bill"] else ""
        reason = f"  \n  {info['reason']}" if info["reason"] else ""
        lines.append(f"- `{info['name']}`: {label}{when}{bill}{reason}")
    return "\n".join(lines)
