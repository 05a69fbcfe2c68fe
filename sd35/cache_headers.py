"""Cache headers for what never changes under its URL (an ASGI middleware).

Gradio sends its build's scripts, its theme and the files it serves without ``Cache-Control``,
so the browser guesses how long each stays fresh (a tenth of its age since ``Last-Modified``:
minutes after an install, nothing at all for a file Gradio copied a moment ago). On every page
open the browser then asks again for the theme (on the way to the first paint: Gradio waits
for it before it mounts the page) and fetches again every thumbnail of the first History page.
Each of these URLs names one content for good:

* ``/assets/<name>-<hash>.<ext>``: the front end's build, file names carry a content hash;
* ``/theme.css?v=<hash>``: the theme, versioned by the hash of its CSS;
* ``/gradio_api/file=<cache>/<64 hex digits>/<name>``: a file in Gradio's cache, in a folder
  named after its content's hash (``processing_utils.save_file_to_cache``) or in one of 256
  random bits that holds this one content for good (``sd35.page_files``).

So those answers (200 only) say so: kept a year without asking again. Files are ``private``
(a user's images: no shared cache keeps them). Nothing else is touched.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

FOREVER = b"max-age=31536000, immutable"
#: A build file with a content hash in its name (Vite: ``Index-DAx5Uzyn2.js``).
_ASSET = re.compile(r"/assets/[^/]+-[A-Za-z0-9_-]{6,}\.(?:js|css|woff2?|ttf|svg|png)$")
#: A file in Gradio's cache: the folder is the SHA-256 of its content, or our random one.
_CACHED_FILE = re.compile(r"/gradio_api/file=.*/[0-9a-f]{64}/[^/]+$")


def cache_control(path: str, query: str) -> bytes | None:
    """The ``Cache-Control`` value for a successful GET of ``path``, or None to leave it."""
    if _ASSET.search(path):
        return b"public, " + FOREVER
    if path.endswith("/theme.css") and re.search(r"(?:^|&)v=[0-9a-f]{16,}", query):
        return b"public, " + FOREVER
    if _CACHED_FILE.search(path):
        return b"private, " + FOREVER
    return None


class ImmutableCaching:
    """Adds ``Cache-Control`` to the answers ``cache_control`` names (GET/HEAD, status 200,
    none set already)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        value = cache_control(scope.get("path", ""), scope.get("query_string", b"").decode())
        if value is None:
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    message = {**message, "headers": [*headers, (b"cache-control", value)]}
            await send(message)

        await self.app(scope, receive, send_with_header)
