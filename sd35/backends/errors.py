"""Failures that only some backends have, placed inside sd35's one error hierarchy (so the
page, the APIs and the CLI treat them like their parents)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sd35.errors import EndpointMissingError, QuotaExceededError, SpaceUnavailableError


class CreditsExhaustedError(QuotaExceededError):
    """HTTP 402: the account's credits for Inference Providers are used up. Nothing comes back
    by itself: ``retry_at`` stays None until the user adds credits (or resumes the backend)."""

    title = "Out of credits"

    def __init__(self, backend: str, detail: str = "") -> None:
        super().__init__(
            f"{backend}: your Hugging Face account has used up its credits for Inference "
            "Providers, so this backend is not used again until you add credits (or a PRO "
            "subscription) and resume it" + (f" (the provider said: {detail})" if detail else ""),
            has_token=True,
        )


class RateLimitedError(QuotaExceededError):
    """HTTP 429: too many requests; ``retry_after`` comes from the ``Retry-After`` header."""

    title = "Rate limited"

    def __init__(
        self, backend: str, retry_after: timedelta | None, *, now: datetime | None = None
    ) -> None:
        super().__init__(
            f"{backend} is rate limiting your requests (too many in a short time)",
            retry_after=retry_after or timedelta(minutes=1),
            has_token=True,
            now=now,
        )


class BackendAuthError(SpaceUnavailableError):
    """HTTP 401/403: no token, or one without the permission this backend needs."""

    title = "Not authorized"


class ModelNotServedError(EndpointMissingError):
    """The provider does not serve the model (permanent until the configuration changes)."""

    title = "Model not served"


class AllBackendsPausedError(QuotaExceededError):
    """Every configured backend is paused; ``retry_at`` is the earliest comes back (None when
    none will by itself, e.g. all are out of credits)."""

    title = "Every backend is paused"
