"""Who may use the APIs.

``--api-key`` is sent as ``Authorization: Bearer KEY`` (also accepted as the password of HTTP
Basic with any user name, for clients that only speak Basic) and ``--api-auth USER:PASS`` as
HTTP Basic. With neither configured the APIs are open (``server.check_safety`` allows that on
loopback only). Secrets are compared with ``hmac.compare_digest`` and never echoed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from sd35.api.errors import ApiError

#: Owner of images made with the Bearer key (Basic users own theirs by name).
KEY_OWNER = "api"


@dataclass(frozen=True)
class Credentials:
    """Who may use the APIs: a Bearer key, Basic users, or (neither given) anyone."""

    api_key: str | None = None
    api_auth: tuple[tuple[str, str], ...] = ()

    @property
    def required(self) -> bool:
        return bool(self.api_key or self.api_auth)

    def __repr__(self) -> str:  # never show a secret
        users = [user for user, _ in self.api_auth]
        return f"Credentials(api_key={'***' if self.api_key else None}, users={users})"

    def identify(self, authorization: str | None) -> tuple[bool, str | None]:
        """``(accepted, owner)`` for an ``Authorization`` header value."""
        if not self.required:
            return True, None
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.api_key:
            return _same(value, self.api_key), KEY_OWNER
        if scheme.lower() != "basic":
            return False, None
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False, None
        user, sep, password = decoded.partition(":")
        if not sep:
            return False, None
        owner = None
        for known_user, known_password in self.api_auth:  # check all: no early exit
            if _same(user, known_user) & _same(password, known_password):
                owner = known_user
        if owner is not None:
            return True, owner
        if self.api_key and _same(password, self.api_key):
            return True, KEY_OWNER
        return False, None


def _same(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))


def unauthorized(credentials: Credentials, authorization: str | None) -> ApiError:
    """The 401 for a missing or wrong ``Authorization``, with the challenge clients expect."""
    given = bool((authorization or "").strip())
    message = (
        "Wrong API credentials."
        if given
        else "API credentials required: send 'Authorization: Bearer <key>' (--api-key) or "
        "HTTP Basic (--api-auth)."
    )
    challenge = 'Basic realm="sd35"' if credentials.api_auth else 'Bearer realm="sd35"'
    return ApiError(
        401,
        message,
        code="invalid_api_key",
        title="Unauthorized",
        headers={"www-authenticate": challenge},
    )
