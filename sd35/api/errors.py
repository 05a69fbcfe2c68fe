"""API errors, independent of any dialect: ``ApiError`` carries the HTTP status, a message for
people and the OpenAI type/code; ``api_error`` maps sd35's error hierarchy onto HTTP. Each
dialect module turns an ``ApiError`` into its own response body."""

from __future__ import annotations

import math
from datetime import datetime

from sd35 import errors as sd35_errors
from sd35.safekeeping import ImageNotSavedError


class ApiError(Exception):
    """An answer other than success: HTTP status, a message for people, OpenAI type and code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        title: str = "Error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.title = title
        self.headers = dict(headers or {})


#: The HTTP status and code of each remote failure; the first class that matches wins, so
#: subclasses come before their bases.
_REMOTE: tuple[tuple[type[sd35_errors.SD35Error], int, str], ...] = (
    (sd35_errors.SpaceTimeoutError, 504, "timeout"),
    (sd35_errors.QueueFullError, 503, "queue_full"),
    (sd35_errors.SpaceSleepingError, 503, "space_sleeping"),
    (sd35_errors.SpaceBuildingError, 503, "space_starting"),
    (sd35_errors.SpacePausedError, 503, "space_not_running"),
    (sd35_errors.ProxyError, 502, "proxy_unreachable"),
    (sd35_errors.SpaceUnavailableError, 502, "space_unreachable"),
    (sd35_errors.EndpointMissingError, 502, "endpoint_missing"),
    (sd35_errors.ConnectionLostError, 502, "connection_lost"),
    (sd35_errors.GenerationFailedError, 502, "generation_failed"),
    (sd35_errors.SpaceError, 502, "space_error"),
)


def api_error(error: sd35_errors.SD35Error) -> ApiError:
    """The HTTP answer for an sd35 error: bad input 400, quota 429, a full queue or a sleeping
    Space 503, an unreachable or failing Space 502, a timeout 504."""
    title = error.title
    if isinstance(error, sd35_errors.InvalidRequestError):
        return ApiError(400, error.message, code="invalid_value", param=error.field, title=title)
    if isinstance(error, sd35_errors.QuotaExceededError):
        headers = {"x-should-retry": "false"}  # retrying at once cannot help
        wait = retry_after_seconds(error)
        if wait is not None:
            headers["retry-after"] = str(wait)
        return ApiError(
            429,
            error.message,
            kind="insufficient_quota",
            code="insufficient_quota",
            title=title,
            headers=headers,
        )
    if isinstance(error, ImageNotSavedError):  # generated and kept, but the disk refused it
        return ApiError(507, error.message, kind="server_error", code="not_saved", title=title)
    for kind, status, code in _REMOTE:
        if isinstance(error, kind):
            return ApiError(status, error.message, kind="server_error", code=code, title=title)
    return ApiError(500, error.message, kind="server_error", code="internal_error", title=title)


def retry_after_seconds(
    error: sd35_errors.QuotaExceededError, now: datetime | None = None
) -> int | None:
    """Whole seconds until the quota allows another try (rounded up, at least 1: a
    ``Retry-After: 0`` would invite a retry that fails again), or None when the wait is unknown.
    Counted to ``retry_at`` so that an error answered later names the wait that remains."""
    if error.retry_at is not None:
        remaining = (error.retry_at - (now or datetime.now())).total_seconds()
    elif error.retry_after is not None:
        remaining = error.retry_after.total_seconds()
    else:
        return None
    return max(1, math.ceil(remaining))


def invalid(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    """A 400 for bad input, naming the offending field in ``param``."""
    return ApiError(400, message, code=code, param=param, title="Invalid input")


def internal() -> ApiError:
    """A 500 for a bug in the studio: the details go to its log, never to the client."""
    return ApiError(
        500,
        "Internal error in the studio; see its log.",
        kind="server_error",
        code="internal_error",
    )


def not_text_to_image(path: str) -> ApiError:
    """The 501 for an image route the Space cannot serve."""
    return ApiError(
        501,
        f"{path} is not available: the Stable Diffusion 3.5 Large Space only does "
        "text-to-image (no image input, editing, variations or upscaling). Use "
        "/v1/images/generations or /sdapi/v1/txt2img.",
        kind="invalid_request_error",
        code="unsupported_operation",
        title="Not Implemented",
    )
