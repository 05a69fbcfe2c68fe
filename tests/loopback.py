"""Real servers on 127.0.0.1 for tests: a forwarding HTTP proxy and a tiny Hub API.

The proxy can map made-up host names to loopback ports, so a test can give the client a URL
that only resolves *through the proxy*: any request that bypassed it would fail.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from typing_extensions import Self

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


class _Served:
    """An HTTP server on a free loopback port, in threads, while the ``with`` block runs."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class LoopbackProxy(_Served):
    """A forwarding HTTP proxy (absolute-URI requests) that records what passes through it."""

    def __init__(self, hosts: dict[str, tuple[str, int]] | None = None) -> None:
        self.hosts = hosts or {}
        self.seen: list[tuple[str, str]] = []  # (method, URL)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _forward(self) -> None:
                target = urllib.parse.urlsplit(self.path)
                with proxy._lock:
                    proxy.seen.append((self.command, self.path))
                host, port = proxy.hosts.get(
                    target.hostname or "", (target.hostname or "", target.port or 80)
                )
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                path = target.path + (f"?{target.query}" if target.query else "")
                upstream = http.client.HTTPConnection(host, port, timeout=60)
                try:
                    upstream.request(self.command, path or "/", body=body, headers=headers)
                    response = upstream.getresponse()
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                # Relay as it arrives: server-sent events must not wait for the whole body.
                while chunk := response.read1(65536):
                    self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        super().__init__(Handler)

    def paths(self) -> list[str]:
        with self._lock:
            return [urllib.parse.urlsplit(url).path for _, url in self.seen]


class FakeHub(_Served):
    """Answers ``/api/spaces/<id>/runtime`` with a chosen stage, like the Hub API does."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.endswith("/runtime"):
                    body = json.dumps({"stage": hub.stage}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                else:
                    body = b"{}"
                    self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)
