"""Image links for OpenAI ``response_format: "url"`` answers, made the way OpenAI's are: an
unguessable URL that needs no ``Authorization`` header (so a tool's server, e.g. LibreChat's,
can download it), that serves only that one image, and that expires after an hour.

The token is 256 random bits; the link table lives in memory (a restart forgets the links, not
the images, which stay in the gallery) and is pruned as links expire.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

#: How long a link works, as OpenAI's image URLs do.
LINK_SECONDS = 3600.0
#: Links kept at most; the oldest go first (a bound, not an expected load).
MAX_LINKS = 10_000


class ImageLinks:
    """Tokens that each name one saved PNG for ``ttl`` seconds."""

    def __init__(
        self, ttl: float = LINK_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._links: dict[str, tuple[Path, float]] = {}
        self._lock = threading.Lock()

    def issue(self, path: Path) -> str:
        """A new token for ``path``."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._prune(now)
            while len(self._links) >= MAX_LINKS:
                self._links.pop(next(iter(self._links)))
            self._links[token] = (path, now + self.ttl)
        return token

    def resolve(self, token: str) -> Path | None:
        """The file ``token`` names, or None when unknown or expired."""
        now = self._clock()
        with self._lock:
            entry = self._links.get(token)
            if entry is None:
                return None
            path, expires = entry
            if now >= expires:
                del self._links[token]
                return None
            return path

    def _prune(self, now: float) -> None:
        expired = [token for token, (_, expires) in self._links.items() if now >= expires]
        for token in expired:
            del self._links[token]
