"""A stand-in of Hugging Face's Inference API on 127.0.0.1, for tests, benchmarks and demos.

It answers what ``huggingface_hub.InferenceClient(...).text_to_image(model=URL)`` really sends
to a model given as a URL (the hf-inference wire format, also what Inference Endpoints take):
``POST`` with a JSON body ``{"inputs": PROMPT, "parameters": {...}}`` and ``Accept: image/png``;
the answer is the PNG's bytes. Errors come as Hugging Face sends them: a JSON body
``{"error": "..."}`` with 401, 402 (credits used up), 404 (model not served), 429 (with
``Retry-After``) or 503 (with ``estimated_time``).

    python3 -m sd35.inference_standin --port 7880 [--seconds 1.0] [--fault credits]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import PngImagePlugin

from sd35.standin import paint_image

#: fault name -> (HTTP status, error text as Hugging Face words it)
FAULTS: dict[str, tuple[int, str]] = {
    "auth": (401, "Invalid credentials in Authorization header"),
    "forbidden": (
        403,
        "This authentication method does not have sufficient permissions to call Inference "
        "Providers on behalf of user",
    ),
    "credits": (
        402,
        "You have exceeded your monthly included credits for Inference Providers. Subscribe to "
        "PRO to get 20x more monthly included credits.",
    ),
    "not_found": (404, "Model not found"),
    "rate_limit": (429, "Rate limit reached. Please retry later."),
    "unavailable": (503, "Service Unavailable: the model is currently loading"),
    "error": (500, "Internal Server Error"),
}


@dataclass
class InferenceStandinConfig:
    """How the stand-in behaves; read at each request, so tests may change it while it runs."""

    #: Seconds each image takes (a stand-in for the GPU's work).
    seconds: float = 0.0
    fault: str | None = None
    fault_once: str | None = None
    #: The ``Retry-After`` header sent with a 429.
    retry_after: int = 30
    #: The answer's format ("PNG", "JPEG", "WEBP") and, for PNG, text chunks it carries (as
    #: providers that write their own metadata do).
    image_format: str = "PNG"
    texts: dict[str, str] = field(default_factory=dict)
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    seen_bodies: list[dict[str, Any]] = field(default_factory=list)
    #: ``time.monotonic()`` when each request arrived and when its answer was sent.
    arrived: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_fault(self) -> str | None:
        with self.lock:
            once, self.fault_once = self.fault_once, None
        fault = once if once is not None else self.fault
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        return fault


class InferenceStandin:
    """The stand-in served from a thread of this process. A context manager."""

    def __init__(self, config: InferenceStandinConfig | None = None, port: int = 0) -> None:
        self.config = config or InferenceStandinConfig()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self.config))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sd35-inference-standin", daemon=True
        )

    def start(self) -> InferenceStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> InferenceStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(config: InferenceStandinConfig) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet: tests read what matters
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            with config.lock:
                config.arrived.append(time.monotonic())
                config.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
            try:
                body = json.loads(raw or b"{}")
                prompt = body["inputs"]
                parameters = body.get("parameters") or {}
                if not isinstance(prompt, str) or not isinstance(parameters, dict):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                self._json(400, {"error": "Input should be a JSON object with `inputs`"})
                return
            with config.lock:
                config.seen_bodies.append(body)
            fault = config.take_fault()
            if fault is not None:
                self._fail(fault)
                return
            if config.seconds:
                time.sleep(config.seconds)
            image = paint_image(
                prompt,
                parameters.get("negative_prompt"),
                int(parameters.get("seed") or 0),
                int(parameters.get("width") or 1024),
                int(parameters.get("height") or 1024),
                float(parameters.get("guidance_scale") or 0.0),
            )
            buffer = io.BytesIO()
            info = PngImagePlugin.PngInfo()
            for key, value in config.texts.items():
                info.add_text(key, value)
            kind = config.image_format.upper()
            extra: dict[str, Any] = {"compress_level": 1, "pnginfo": info} if kind == "PNG" else {}
            image.save(buffer, format=kind, **extra)
            self._send(200, buffer.getvalue(), f"image/{kind.lower()}")

        def _fail(self, fault: str) -> None:
            status, text = FAULTS[fault]
            payload: dict[str, Any] = {"error": text}
            headers = {}
            if status == 429:
                headers["Retry-After"] = str(config.retry_after)
            if status == 503:
                payload["estimated_time"] = 20.0
            self._json(status, payload, headers)

        def _json(self, status: int, payload: dict[str, Any], headers: dict | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json", headers)

        def _send(
            self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            with config.lock:
                config.answered.append(time.monotonic())

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sd35.inference_standin")
    parser.add_argument("--port", type=int, default=7880)
    parser.add_argument("--seconds", type=float, default=0.0, help="seconds per image")
    parser.add_argument("--fault", choices=sorted(FAULTS))
    args = parser.parse_args(argv)
    standin = InferenceStandin(
        InferenceStandinConfig(seconds=args.seconds, fault=args.fault), port=args.port
    )
    print(f"Inference API stand-in on {standin.url} (use endpoint:{standin.url})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        standin._server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
