"""The errors sd35 raises: one documented hierarchy, each with a message fit for a person.

    SD35Error
    ├── InvalidRequestError        bad input, caught before anything is sent (never retried)
    └── SpaceError                 the remote side failed
        ├── SpaceUnavailableError  could not reach the Space (retried with backoff)
        │   ├── ProxyError         could not reach the configured proxy
        │   ├── SpaceSleepingError the Space is asleep; a request wakes it, which takes minutes
        │   ├── SpaceBuildingError the Space is being built or restarted
        │   └── SpacePausedError   paused or broken by its owner; retrying will not help
        ├── EndpointMissingError   the Space has no /infer (renamed API)
        ├── QuotaExceededError     ZeroGPU quota used up (never retried); says when to retry
        ├── QueueFullError         the Space's queue answered "full" (HTTP 503)
        ├── GenerationFailedError  the Space raised an error while generating
        │   └── ConnectionLostError the connection dropped mid-generation
        └── SpaceTimeoutError      no result within the time limit

Every message is plain text (no HTML), and a token never appears in one: see ``redact``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any


class SD35Error(Exception):
    """Base of every error sd35 raises on purpose. ``message`` is meant for the user."""

    #: Short category shown before the message in the UI and used by the CLI.
    title = "Error"
    #: The message of an error whose wording never varies, so that it is written once.
    default_message = ""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidRequestError(SD35Error, ValueError):
    """A request value the Space would reject; ``field`` names it, ``value`` is what was given."""

    title = "Invalid input"

    def __init__(self, field: str, value: Any, message: str) -> None:
        self.field = field
        self.value = value
        super().__init__(message)


class SpaceError(SD35Error):
    """The remote Space failed; subclasses say how."""

    title = "Space error"


class SpaceUnavailableError(SpaceError):
    """The Space could not be reached or is not running."""

    title = "Space unavailable"


class ProxyError(SpaceUnavailableError):
    """The configured HTTP(S) proxy refused or dropped the connection."""

    title = "Proxy unreachable"


class SpaceSleepingError(SpaceUnavailableError):
    """The Space is asleep; the first request wakes it, which takes a few minutes."""

    title = "Space is asleep"
    default_message = (
        "The Space is asleep. Your request wakes it, which takes a few minutes; try again then."
    )


class SpaceBuildingError(SpaceUnavailableError):
    """The Space is building or starting up."""

    title = "Space is starting"
    default_message = (
        "The Space is starting up (building or restarting). Try again in a few minutes."
    )


class SpacePausedError(SpaceUnavailableError):
    """The Space is paused or broken; only its owner can fix that."""

    title = "Space is not running"
    default_message = "The Space is paused by its owner; it cannot generate until they restart it."


class EndpointMissingError(SpaceError):
    """The Space does not offer the endpoint we call (its API was renamed or removed)."""

    title = "Endpoint missing"


class QuotaExceededError(SpaceError):
    """The caller's ZeroGPU quota is used up.

    ``space_message`` is the Space's own text without HTML; ``retry_after`` is the wait it
    names, if any; ``retry_at`` the moment that wait ends.
    """

    title = "GPU quota exceeded"

    def __init__(
        self,
        space_message: str,
        *,
        retry_after: timedelta | None = None,
        has_token: bool = False,
        now: datetime | None = None,
    ) -> None:
        self.space_message = space_message
        self.retry_after = retry_after
        self.retry_at = (now or datetime.now()) + retry_after if retry_after else None
        parts = [space_message.rstrip(".") + "."]
        if self.retry_at is not None:
            parts.append(f"You can try again at {self.retry_at:%H:%M} (in {_human(retry_after)}).")
        if not has_token:
            parts.append(
                "Set a Hugging Face token (HF_TOKEN) so the quota is your account's own: "
                "a free account gets more GPU time than anonymous use."
            )
        super().__init__(" ".join(parts))


class QueueFullError(SpaceError):
    """The Space's queue is full (HTTP 503)."""

    title = "Queue full"
    default_message = "The Space's queue is full right now. Wait a minute and try again."


class GenerationFailedError(SpaceError):
    """The Space raised an error while generating; ``space_message`` is its text."""

    title = "Generation failed"

    def __init__(self, message: str | None = None, space_message: str | None = None) -> None:
        self.space_message = space_message
        super().__init__(message)


class ConnectionLostError(GenerationFailedError):
    """The connection to the Space dropped before the image arrived."""

    title = "Connection lost"
    default_message = (
        "The connection to the Space dropped before the image arrived (the Space may have "
        "restarted or crashed). Your settings are kept: try again."
    )


class SpaceTimeoutError(SpaceError, TimeoutError):
    """No result arrived within the time limit; the remote job has been cancelled."""

    title = "Timed out"


def _human(delta: timedelta | None) -> str:
    if delta is None:
        return "a while"
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{6,}")


def redact(text: str, *secrets: str | None) -> str:
    """Replace every given secret, and anything shaped like a Hugging Face token, by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _TOKEN_PATTERN.sub("hf_***", text)
