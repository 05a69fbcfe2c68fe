"""Cross-site protection for everything the studio serves (an ASGI middleware).

A web page in the user's browser can send "simple" requests to 127.0.0.1 (``text/plain``
POSTs, forms) and, by DNS rebinding, make a name of its own resolve to our address. So:

* the ``Host`` header must name this server: an IP address (a rebound name never looks like
  one), ``localhost``, the ``--host`` name, the machine's own name when served to the network,
  or a name allowed with ``--allowed-host``;
* a request that changes anything (any method but GET and HEAD; preflights too) with an ``Origin``
  other than our own is refused (``Origin: null`` included);
* on the APIs (``/v1``, ``/sdapi``, the MCP server) such a request with a body must be JSON
  (which a browser cannot send cross-site without a preflight) or carry credentials.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD"})
#: Paths whose state-changing requests must be JSON or carry credentials.
API_PREFIXES = ("/v1/", "/sdapi/", "/gradio_api/mcp")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _hostname(netloc: str) -> str:
    """The host part of ``host[:port]`` (IPv6 in brackets kept whole), lower-case."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class HostPolicy:
    """Which names this server answers to (more may be added later, e.g. a share link's)."""

    def __init__(self, host: str = "127.0.0.1", allowed: Iterable[str] = ()) -> None:
        self.names = {"localhost", *(name.strip().lower() for name in allowed if name.strip())}
        if host and not _is_ip(host):
            self.names.add(host.lower())
        if host and host not in ("localhost", "127.0.0.1", "::1"):
            # Served to the network: the machine's own names are ours too (an attacker's
            # rebound name never is one of them).
            machine = socket.gethostname().lower()
            self.names |= {machine, f"{machine}.local", socket.getfqdn().lower()}

    def allow(self, name: str) -> None:
        self.names.add(name.strip().lower())

    def host_ok(self, netloc: str | None) -> bool:
        """True for a ``Host`` header that names us."""
        if not netloc:
            return False
        host = _hostname(netloc)
        return _is_ip(host) or host in self.names or "*" in self.names

    def origin_ok(self, origin: str, netloc: str | None) -> bool:
        """True when ``origin`` is the page's own origin (the one it was served on) or an
        allowed name's."""
        parts = urllib.parse.urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" and anything else opaque
        if netloc and parts.netloc.lower() == netloc.strip().lower():
            return True
        return _hostname(parts.netloc) in self.names - {"localhost"}


class CrossSiteGuard:
    """The ASGI middleware enforcing a ``HostPolicy`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self.problem(scope, headers)
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await _refuse(send, *problem)

    def problem(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """``(status, code, message)`` when the request must be refused, else None."""
        host = headers.get("host")
        if not self.policy.host_ok(host):
            return (
                421,
                "unknown_host",
                f"This server does not answer to the name {host!r}. Use its address, or start "
                "it with --allowed-host NAME.",
            )
        method = scope.get("method", "GET").upper()
        if method in SAFE_METHODS and scope["type"] == "http":
            return None
        origin = headers.get("origin")
        if origin is not None and not self.policy.origin_ok(origin, host):
            return 403, "cross_site", f"Requests from other sites ({origin}) are refused."
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(API_PREFIXES):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            is_json = kind == "application/json" or kind.endswith("+json")
            if (kind or has_body) and not is_json and not headers.get("authorization"):
                return (
                    415,
                    "json_required",
                    "Send the request body as JSON (Content-Type: application/json).",
                )
        return None


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps(
        {
            "detail": message,
            "error": {"message": message, "type": "invalid_request_error", "code": code},
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
