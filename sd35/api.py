"""The studio's APIs for other tools, served beside the page on the same port.

* **OpenAI Images** (``/v1/images/generations``, ``/v1/models``): for the ``openai`` package,
  Open WebUI's "OpenAI" image engine, LibreChat and friends.
* **AUTOMATIC1111** (``/sdapi/v1/txt2img``, ``/progress``, ``/interrupt`` and the read-only
  routes clients call when they connect): for ``webuiapi`` and Open WebUI's "Automatic1111"
  engine.
* **MCP**: a ``generate_image`` tool on Gradio's own MCP server (``--mcp``).

One app, not three: every route validates with ``sd35.params`` against the Space's schema,
generates through ``Studio.run`` (the same Space client and error hierarchy as the page) and
leaves its images in the gallery with their metadata, owned by whoever authenticated (the Basic
user name, ``"api"`` for the Bearer key, or nobody on an open loopback server, so that the local
page lists them).

Credentials: ``--api-key`` as ``Authorization: Bearer KEY`` (also accepted as the password of
HTTP Basic with any user name, for clients that only speak Basic) and ``--api-auth USER:PASS``
as HTTP Basic. With neither configured the APIs are open (``server.check_safety`` allows that on
loopback only). Secrets are compared with ``hmac.compare_digest`` and never echoed.

Concurrency: handlers are async and never block the event loop (store and file work runs in
threads). At most ``studio.concurrency`` API generations run at once; one more is refused at
once with 503 "queue full" in the API's own shape rather than left hanging.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import io
import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image

from sd35.errors import (
    ConnectionLostError,
    EndpointMissingError,
    GenerationFailedError,
    InvalidRequestError,
    ProxyError,
    QueueFullError,
    QuotaExceededError,
    SD35Error,
    SpaceBuildingError,
    SpaceError,
    SpacePausedError,
    SpaceSleepingError,
    SpaceTimeoutError,
    SpaceUnavailableError,
)
from sd35.gallery import StoredImage
from sd35.metadata import to_a1111
from sd35.params import MAX_SEED, GenerationRequest, aspect_ratio_presets, build_request
from sd35.space_client import Preview, Progress, Queued, Started
from sd35.studio import MODEL_NAME, Saved, Studio

log = logging.getLogger("sd35.api")

MODEL_ID = MODEL_NAME
MODEL_ALIASES = ("sd-3.5", "sd-3.5-large")
MODELS = (MODEL_ID, *MODEL_ALIASES)
#: Owner of images made with the Bearer key (Basic users own theirs by name).
KEY_OWNER = "api"
#: Images per OpenAI request, and per A1111 request (batch_size × n_iter).
MAX_OPENAI_IMAGES = 4
MAX_A1111_IMAGES = 8
#: A request body larger than this is refused (a prompt is at most a few KiB).
MAX_BODY_BYTES = 1024 * 1024
#: The sampler SD 3.5 uses (FlowMatchEulerDiscreteScheduler), as A1111 clients expect to see one.
SAMPLER = "Euler"
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


# --- errors ------------------------------------------------------------------------------------


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

    def openai(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.code,
                "param": self.param,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)

    def a1111(self) -> JSONResponse:
        # AUTOMATIC1111's own error body (its api_middleware): error, detail, body, errors.
        body = {"error": self.title, "detail": self.message, "body": "", "errors": self.message}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def api_error(error: SD35Error) -> ApiError:
    """The HTTP answer for an sd35 error: bad input 400, quota 429, a full queue or a sleeping
    Space 503, an unreachable or failing Space 502, a timeout 504."""
    title = error.title
    if isinstance(error, InvalidRequestError):
        return ApiError(400, error.message, code="invalid_value", param=error.field, title=title)
    if isinstance(error, QuotaExceededError):
        headers = {"x-should-retry": "false"}  # retrying at once cannot help
        if error.retry_after is not None:
            headers["retry-after"] = str(int(error.retry_after.total_seconds()))
        return ApiError(
            429,
            error.message,
            kind="insufficient_quota",
            code="insufficient_quota",
            title=title,
            headers=headers,
        )
    table: list[tuple[type[SD35Error], int, str]] = [
        (SpaceTimeoutError, 504, "timeout"),
        (QueueFullError, 503, "queue_full"),
        (SpaceSleepingError, 503, "space_sleeping"),
        (SpaceBuildingError, 503, "space_starting"),
        (SpacePausedError, 503, "space_not_running"),
        (ProxyError, 502, "proxy_unreachable"),
        (SpaceUnavailableError, 502, "space_unreachable"),
        (EndpointMissingError, 502, "endpoint_missing"),
        (ConnectionLostError, 502, "connection_lost"),
        (GenerationFailedError, 502, "generation_failed"),
        (SpaceError, 502, "space_error"),
    ]
    for kind, status, code in table:
        if isinstance(error, kind):
            return ApiError(status, error.message, kind="server_error", code=code, title=title)
    return ApiError(500, error.message, kind="server_error", code="internal_error", title=title)


def _busy(limit: int) -> ApiError:
    return ApiError(
        503,
        f"Queue full: this studio already runs {limit} API generation(s), its limit. "
        "Try again when one has finished.",
        kind="server_error",
        code="queue_full",
        title="Queue full",
        headers={"retry-after": "5"},
    )


def _invalid(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param, title="Invalid input")


# --- credentials -------------------------------------------------------------------------------


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


def _unauthorized(credentials: Credentials, authorization: str | None) -> ApiError:
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


# --- the shared gate: bound and running jobs ---------------------------------------------------


@dataclass
class Job:
    """One AUTOMATIC1111 txt2img call while it runs (for /progress and /interrupt)."""

    owner: str | None
    job_count: int
    started: float = field(default_factory=time.monotonic)
    timestamp: str = field(default_factory=lambda: datetime.now().strftime("%Y%m%d%H%M%S"))
    job_no: int = 0
    step: int = 0
    steps: int = 0
    queued: bool = True
    preview: Path | None = None
    preview_png: tuple[Path, str] | None = None
    current: asyncio.Future[Any] | None = None
    interrupted: bool = False
    skipped: bool = False

    def fraction(self) -> float:
        within = self.step / self.steps if self.steps else 0.0
        return min(max((self.job_no + within) / max(1, self.job_count), 0.0), 1.0)

    def stop_current(self) -> None:
        if self.current is not None and not self.current.done():
            self.current.cancel()


class Gate:
    """One per studio: bounds the API and MCP generations running at once and keeps the running
    A1111 jobs. Used from the server's event loop only; the lock is for safety, not speed."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.active = 0
        self.jobs: list[Job] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one generation slot; ``ApiError`` 503 at once when all are taken."""
        with self._lock:
            if self.active >= self.limit:
                raise _busy(self.limit)
            self.active += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1

    @contextlib.contextmanager
    def track(self, job: Job) -> Iterator[Job]:
        with self._lock:
            self.jobs.append(job)
        try:
            yield job
        finally:
            with self._lock:
                self.jobs.remove(job)

    def jobs_of(self, owner: str | None) -> list[Job]:
        with self._lock:
            return [job for job in self.jobs if owner is None or job.owner == owner]


_gates: weakref.WeakKeyDictionary[Studio, Gate] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


def gate_for(studio: Studio) -> Gate:
    """The gate shared by the HTTP APIs and the MCP tool of one studio."""
    with _gates_lock:
        gate = _gates.get(studio)
        if gate is None:
            gate = _gates[studio] = Gate(studio.concurrency)
        return gate


# --- generation --------------------------------------------------------------------------------


async def generate_one(
    studio: Studio, request: GenerationRequest, owner: str | None, job: Job | None = None
) -> Saved:
    """Run one request through ``Studio.run`` (so it is saved in the gallery), noting progress
    on ``job``; returns the saved image."""
    saved: Saved | None = None
    async for event in studio.run(request, owner):
        if job is None:
            pass
        elif isinstance(event, Queued):
            job.queued = True
        elif isinstance(event, Started):
            job.queued = False
        elif isinstance(event, Progress):
            job.queued = False
            job.step, job.steps = event.step, event.total
        elif isinstance(event, Preview):
            job.preview = event.path
        if isinstance(event, Saved):
            saved = event
    if saved is None:
        raise GenerationFailedError("The generation ended without an image (it was cancelled).")
    return saved


async def generate_many(
    studio: Studio, requests: Sequence[GenerationRequest], owner: str | None, job: Job | None
) -> list[Saved]:
    """Run requests one after another (each image its own Space job). With a ``job``, each
    image runs as a task that ``/interrupt`` (all) or ``/skip`` (this one) may cancel; the
    images finished before then are returned."""
    results: list[Saved] = []
    for index, request in enumerate(requests):
        if job is None:
            results.append(await generate_one(studio, request, owner))
            continue
        if job.interrupted:
            break
        job.job_no, job.step, job.steps = index, 0, request.num_inference_steps
        job.preview, job.skipped, job.queued = None, False, True
        task = asyncio.ensure_future(generate_one(studio, request, owner, job))
        job.current = task
        try:
            results.append(await task)
        except asyncio.CancelledError:
            # Cancelled by /interrupt or /skip: the remote job was cancelled (Generation ends
            # it when its iteration is cancelled). Anything else cancelling us propagates.
            if not (job.interrupted or job.skipped) or not task.cancelled():
                task.cancel()
                raise
        finally:
            job.current = None
    return results


def _seeded(request: GenerationRequest, count: int) -> list[GenerationRequest]:
    """``count`` requests: random seeds each, or consecutive seeds from a fixed one."""
    if request.randomize_seed:
        return [request] * count
    return [replace(request, seed=(request.seed + i) % (MAX_SEED + 1)) for i in range(count)]


def _png_b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _preview_b64(path: Path) -> str:
    """A preview frame (often WebP from the Space) as base64 PNG, as A1111 sends them."""
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# --- request parsing ---------------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _invalid(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _invalid(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise _invalid("The request body must be JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise _invalid("The request body must be a JSON object.", code="invalid_json")
    return data


def _count(data: dict[str, Any], name: str, default: int, maximum: int) -> int:
    value = data.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise _invalid(f"{name} must be a whole number from 1 to {maximum}.", name)
    if not 1 <= value <= maximum:
        raise _invalid(f"{name} = {value} is out of range (allowed: 1 to {maximum}).", name)
    return int(value)


def _optional_text(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{name} must be text.", name)
    return value


def _seed(value: Any) -> int | None:
    """None for "random" (absent, null or -1), else the value (validated by params)."""
    if value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value == -1
    ):
        return None
    return value


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def resolve_model(model: Any) -> str:
    """Our model id for ``model`` (absent: the default); 400 naming the models otherwise."""
    if model is None or model == "":
        return MODEL_ID
    if isinstance(model, str) and model.strip().lower() in MODELS:
        return MODEL_ID
    raise _invalid(
        f"Unknown model {model!r}. This server offers {MODEL_ID} (aliases: "
        f"{', '.join(MODEL_ALIASES)}).",
        "model",
        code="model_not_found",
    )


def openai_request(data: dict[str, Any], studio: Studio) -> tuple[GenerationRequest, int, str]:
    """(request, n, response_format) from an OpenAI ``images/generations`` body."""
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _invalid("prompt is required: describe the image.", "prompt")
    resolve_model(data.get("model"))
    if data.get("stream"):
        raise _invalid("Streaming is not supported here; leave stream unset.", "stream")
    n = _count(data, "n", 1, MAX_OPENAI_IMAGES)
    response_format = data.get("response_format") or "b64_json"
    if response_format not in ("b64_json", "url"):
        raise _invalid("response_format must be 'url' or 'b64_json'.", "response_format")
    schema = studio.schema()
    allowed = f"width {schema.width.describe()}, height {schema.height.describe()}"
    size = data.get("size")
    width = height = None
    if size is not None and size != "auto":
        match = _SIZE.match(size) if isinstance(size, str) else None
        if match is None:
            raise _invalid(f"size must look like 1024x768, or be auto ({allowed}).", "size")
        width, height = int(match.group(1)), int(match.group(2))
    seed = _seed(data.get("seed"))
    try:
        request = build_request(
            prompt,
            negative_prompt=_optional_text(data, "negative_prompt"),
            aspect_ratio=_optional_text(data, "aspect_ratio") or "1:1",
            width=width,
            height=height,
            guidance_scale=data.get("guidance_scale"),
            num_inference_steps=data.get("num_inference_steps"),
            seed=seed,
            randomize_seed=seed is None,
            schema=schema,
        )
    except InvalidRequestError as error:
        if error.field in ("width", "height") and width is not None:
            raise _invalid(f"size {size} is not allowed: {error.message}", "size") from None
        raise
    return request, n, response_format


def a1111_request(data: dict[str, Any], studio: Studio) -> tuple[GenerationRequest, int]:
    """(request, image count) from an AUTOMATIC1111 ``txt2img`` body; fields that mean nothing
    here (sampler, hires fix, scripts, …) are ignored."""
    prompt = data.get("prompt")
    if prompt is None:
        prompt = ""
    batch_size = _count(data, "batch_size", 1, MAX_A1111_IMAGES)
    n_iter = _count(data, "n_iter", 1, MAX_A1111_IMAGES)
    if batch_size * n_iter > MAX_A1111_IMAGES:
        raise _invalid(
            f"batch_size × n_iter = {batch_size * n_iter}; at most {MAX_A1111_IMAGES} images "
            "per request.",
            "batch_size",
        )
    seed = _seed(data.get("seed"))
    schema = studio.schema()
    request = build_request(
        prompt,
        negative_prompt=_optional_text(data, "negative_prompt"),
        width=_default(data.get("width"), int(schema.width.default)),
        height=_default(data.get("height"), int(schema.height.default)),
        guidance_scale=data.get("cfg_scale"),
        num_inference_steps=data.get("steps"),
        seed=seed,
        randomize_seed=seed is None,
        schema=schema,
    )
    return request, batch_size * n_iter


# --- the HTTP service --------------------------------------------------------------------------


class ApiService:
    """The route handlers, bound to one studio, its gate and the credentials."""

    def __init__(self, studio: Studio, credentials: Credentials) -> None:
        self.studio = studio
        self.credentials = credentials
        self.gate = gate_for(studio)

    # -- plumbing ---------------------------------------------------------------------------

    def owner(self, request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        accepted, owner = self.credentials.identify(authorization)
        if not accepted:
            raise _unauthorized(self.credentials, authorization)
        return owner

    def openai_route(self, handler: Callable[..., Any]) -> Callable[[Request], Any]:
        return self._route(handler, ApiError.openai)

    def a1111_route(self, handler: Callable[..., Any]) -> Callable[[Request], Any]:
        return self._route(handler, ApiError.a1111)

    def _route(
        self, handler: Callable[..., Any], shape: Callable[[ApiError], JSONResponse]
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                owner = self.owner(request)
                result = await handler(request, owner)
            except ApiError as error:
                return shape(error)
            except SD35Error as error:
                return shape(api_error(error))
            except Exception:
                log.exception("API request %s %s failed", request.method, request.url.path)
                return shape(
                    ApiError(
                        500,
                        "Internal error in the studio; see its log.",
                        kind="server_error",
                        code="internal_error",
                    )
                )
            return result if isinstance(result, Response) else JSONResponse(result)

        endpoint.__name__ = f"sd35_{handler.__name__}"
        return endpoint

    # -- OpenAI -----------------------------------------------------------------------------

    async def images_generations(self, request: Request, owner: str | None) -> dict[str, Any]:
        data = await _json_body(request)
        generation, n, response_format = openai_request(data, self.studio)
        with self.gate.slot():
            results = await generate_many(self.studio, _seeded(generation, n), owner, None)
        items = []
        for saved in results:
            item: dict[str, Any] = {"revised_prompt": generation.prompt, "seed": saved.result.seed}
            if response_format == "b64_json":
                item["b64_json"] = await asyncio.to_thread(_png_b64, saved.image.path)
            else:
                item["url"] = str(
                    request.url_for("sd35_image_file", image_id=f"{saved.image.id}.png")
                )
            items.append(item)
        return {
            "created": int(time.time()),
            "data": items,
            "size": f"{generation.width}x{generation.height}",
            "output_format": "png",
        }

    async def image_file(self, request: Request, owner: str | None) -> Response:
        image_id = request.path_params["image_id"].removesuffix(".png")
        image = await asyncio.to_thread(self._stored_file, image_id, owner)
        if image is None:
            raise ApiError(404, f"No image {image_id!r} here.", code="not_found", title="Not found")
        return FileResponse(image.path, media_type="image/png", filename=image.path.name)

    def _stored_file(self, image_id: str, owner: str | None) -> StoredImage | None:
        image = self.studio.store.get(image_id, owner)
        return image if image is not None and image.path.is_file() else None

    async def models(self, request: Request, owner: str | None) -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(model) for model in MODELS]}

    async def model(self, request: Request, owner: str | None) -> dict[str, Any]:
        model = request.path_params["model"]
        if model.lower() not in MODELS:
            raise ApiError(
                404,
                f"The model {model!r} does not exist here; this server offers {MODEL_ID}.",
                code="model_not_found",
                param="model",
                title="Not found",
            )
        return _model_card(model.lower())

    # -- AUTOMATIC1111 ----------------------------------------------------------------------

    async def txt2img(self, request: Request, owner: str | None) -> dict[str, Any]:
        data = await _json_body(request)
        generation, count = a1111_request(data, self.studio)
        requests = _seeded(generation, count)
        with self.gate.slot(), self.gate.track(Job(owner, count)) as job:
            results = await generate_many(self.studio, requests, owner, job)
        send_images = data.get("send_images", True) is not False
        images = (
            [await asyncio.to_thread(_png_b64, saved.image.path) for saved in results]
            if send_images
            else []
        )
        seeds = [saved.result.seed for saved in results] or [generation.seed]
        info = {
            "prompt": generation.prompt,
            "all_prompts": [generation.prompt] * len(results),
            "negative_prompt": generation.negative_prompt,
            "all_negative_prompts": [generation.negative_prompt] * len(results),
            "seed": seeds[0],
            "all_seeds": seeds,
            "subseed": -1,
            "all_subseeds": [-1] * len(seeds),
            "subseed_strength": 0,
            "width": generation.width,
            "height": generation.height,
            "sampler_name": SAMPLER,
            "cfg_scale": generation.guidance_scale,
            "steps": generation.num_inference_steps,
            "batch_size": data.get("batch_size", 1),
            "restore_faces": False,
            "face_restoration_model": None,
            "sd_model_name": MODEL_ID,
            "sd_model_hash": None,
            "sd_vae_name": None,
            "sd_vae_hash": None,
            "seed_resize_from_w": -1,
            "seed_resize_from_h": -1,
            "denoising_strength": 0,
            "extra_generation_params": {},
            "index_of_first_image": 0,
            "infotexts": [to_a1111(saved.image.meta) for saved in results],
            "styles": [],
            "job_timestamp": job.timestamp,
            "clip_skip": 1,
            "is_using_inpainting_conditioning": False,
            "version": "sd35",
            "interrupted": job.interrupted,
        }
        parameters = {
            **data,
            "prompt": generation.prompt,
            "negative_prompt": generation.negative_prompt,
            "seed": data.get("seed", -1),
            "width": generation.width,
            "height": generation.height,
            "cfg_scale": generation.guidance_scale,
            "steps": generation.num_inference_steps,
            "batch_size": data.get("batch_size", 1),
            "n_iter": data.get("n_iter", 1),
        }
        return {"images": images, "parameters": parameters, "info": json.dumps(info)}

    async def progress(self, request: Request, owner: str | None) -> dict[str, Any]:
        jobs = self.gate.jobs_of(owner)
        job = jobs[-1] if jobs else None
        if job is None:
            return _progress_body(0.0, 0.0, _state(None), None, "")
        fraction = job.fraction()
        elapsed = time.monotonic() - job.started
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        skip_image = request.query_params.get("skip_current_image", "").lower() == "true"
        current = None
        if job.preview is not None and not skip_image:
            cached = job.preview_png
            if cached is None or cached[0] != job.preview:
                path = job.preview
                cached = job.preview_png = (path, await asyncio.to_thread(_preview_b64, path))
            current = cached[1]
        text = (
            "Waiting in the Space's queue"
            if job.queued
            else f"Image {job.job_no + 1} of {job.job_count}: step {job.step} of {job.steps}"
        )
        return _progress_body(fraction, eta, _state(job), current, text)

    async def interrupt(self, request: Request, owner: str | None) -> dict[str, Any]:
        for job in self.gate.jobs_of(owner):
            job.interrupted = True
            job.stop_current()
        return {}

    async def skip(self, request: Request, owner: str | None) -> dict[str, Any]:
        for job in self.gate.jobs_of(owner):
            job.skipped = True
            job.stop_current()
        return {}

    async def sd_models(self, request: Request, owner: str | None) -> list[dict[str, Any]]:
        return [
            {
                "title": MODEL_ID,
                "model_name": MODEL_ID,
                "hash": None,
                "sha256": None,
                "filename": self.studio.client.space,
                "config": None,
            }
        ]

    async def get_options(self, request: Request, owner: str | None) -> dict[str, Any]:
        return {
            "sd_model_checkpoint": MODEL_ID,
            "sd_checkpoint_hash": None,
            "samples_format": "png",
            "sd_vae": "Automatic",
            "CLIP_stop_at_last_layers": 1,
            "eta_noise_seed_delta": 0,
        }

    async def set_options(self, request: Request, owner: str | None) -> dict[str, Any]:
        data = await _json_body(request)
        if "sd_model_checkpoint" in data:
            resolve_model(data["sd_model_checkpoint"])
        return {}  # nothing else is settable here; accepted so clients that save options work


def _model_card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1729555200, "owned_by": "stabilityai"}


def _state(job: Job | None) -> dict[str, Any]:
    return {
        "skipped": bool(job and job.skipped),
        "interrupted": bool(job and job.interrupted),
        "stopping_generation": False,
        "job": f"txt2img {job.job_no + 1}/{job.job_count}" if job else "",
        "job_count": job.job_count if job else 0,
        "job_timestamp": job.timestamp if job else "0",
        "job_no": job.job_no if job else 0,
        "sampling_step": job.step if job else 0,
        "sampling_steps": job.steps if job else 0,
    }


def _progress_body(
    progress: float, eta: float, state: dict[str, Any], image: str | None, text: str
) -> dict[str, Any]:
    return {
        "progress": round(progress, 4),
        "eta_relative": round(max(eta, 0.0), 2),
        "state": state,
        "current_image": image,
        "textinfo": text,
    }


def _constant(value: Any) -> Callable[[Request, str | None], Any]:
    async def handler(request: Request, owner: str | None) -> Any:
        return value

    handler.__name__ = "constant"
    return handler


#: Read-only A1111 routes that clients (webuiapi's connect-time ``/scripts``, Open WebUI, the
#: ``util_*`` helpers) call; there is nothing behind them here, so they answer empty lists.
A1111_CONSTANTS: dict[str, Any] = {
    "samplers": [{"name": SAMPLER, "aliases": ["euler", "flow_match_euler"], "options": {}}],
    "schedulers": [{"name": "automatic", "label": "Automatic", "aliases": None}],
    "upscalers": [],
    "latent-upscale-modes": [],
    "sd-vae": [],
    "loras": [],
    "hypernetworks": [],
    "face-restorers": [],
    "realesrgan-models": [],
    "prompt-styles": [],
    "embeddings": {"loaded": {}, "skipped": {}},
    "scripts": {"txt2img": [], "img2img": []},
    "script-info": [],
    "extensions": [],
    "cmd-flags": {"api": True, "nowebui": False},
}


def build_router(service: ApiService) -> APIRouter:
    """Every API route, on a router of its own (``mount_api`` splices its routes in)."""
    router = APIRouter()
    openai, a1111 = service.openai_route, service.a1111_route

    def add(path: str, endpoint: Callable[[Request], Any], methods: list[str], **kw: Any) -> None:
        router.add_api_route(path, endpoint, methods=methods, include_in_schema=False, **kw)

    add("/v1/images/generations", openai(service.images_generations), ["POST"])
    add("/v1/models", openai(service.models), ["GET"])
    add("/v1/models/{model}", openai(service.model), ["GET"])
    add(
        "/v1/images/files/{image_id}",
        openai(service.image_file),
        ["GET"],
        name="sd35_image_file",
    )
    add("/sdapi/v1/txt2img", a1111(service.txt2img), ["POST"])
    add("/sdapi/v1/progress", a1111(service.progress), ["GET"])
    add("/sdapi/v1/interrupt", a1111(service.interrupt), ["POST"])
    add("/sdapi/v1/skip", a1111(service.skip), ["POST"])
    add("/sdapi/v1/sd-models", a1111(service.sd_models), ["GET"])
    add("/sdapi/v1/options", a1111(service.get_options), ["GET"])
    add("/sdapi/v1/options", a1111(service.set_options), ["POST"])
    add("/sdapi/v1/refresh-checkpoints", a1111(_constant(None)), ["POST"])
    for name, value in A1111_CONSTANTS.items():
        add(f"/sdapi/v1/{name}", a1111(_constant(value)), ["GET"])
    return router


def mount_api(
    page: gr.Blocks,
    studio: Studio,
    *,
    api_key: str | None,
    api_auth: Sequence[tuple[str, str]],
) -> None:
    """Serve the OpenAI and A1111 routes on the running page's FastAPI app (``page.app``).

    Called right after ``page.launch(prevent_thread_lock=True)``: ``launch`` is what creates
    ``page.app``, and the server is already answering. Routes added to a running Starlette app
    work: the router reads its route list at each request, and the middleware stack (built at
    the first request) wraps the router object, not a copy of its list. But Starlette takes
    the *first* matching route, and ``app.add_api_route`` would append ours after all of
    Gradio's, including its mounts (the MCP server's ``/gradio_api/mcp`` sub-app takes every
    path below it) and ``{path:path}`` routes. In Gradio 6.31 none of them matches ``/v1/…``
    or ``/sdapi/v1/…``, but a catch-all added by a later Gradio (or a root mount when the app
    is embedded) would silently shadow ours; so they are spliced in at the *front*, in place
    (one list operation under the GIL, safe while requests are being served).
    """
    credentials = Credentials(api_key or None, tuple(api_auth or ()))
    service = ApiService(studio, credentials)
    router = build_router(service)
    app = page.app
    app.router.routes[:0] = router.routes


# --- MCP ---------------------------------------------------------------------------------------


def add_mcp_tool(
    page: gr.Blocks,
    studio: Studio,
    *,
    api_key: str | None = None,
    api_auth: Sequence[tuple[str, str]] = (),
) -> None:
    """Add the ``generate_image`` MCP tool to ``page`` (call before ``launch(mcp_server=True)``).

    Gradio's MCP server makes a tool of every public named endpoint of the Blocks, named after
    its function, described by its docstring. The tool is a hidden event (real components, so
    the image reaches MCP clients as an image, not a file path) that runs without the queue:
    Gradio then calls it in-process, with no loopback through ``gradio_client`` (which would not
    be logged in when the page has ``--auth``). The page's other public endpoints (its
    ``/generate`` for ``gradio_client``) are marked so that MCP does not list them.

    The MCP endpoint is not behind the page's login, so the tool checks the API credentials
    itself (from the MCP request's ``Authorization`` header) when any are given.
    """
    credentials = Credentials(api_key or None, tuple(api_auth or ()))
    gate = gate_for(studio)
    ratios = list(aspect_ratio_presets(studio.schema()))

    async def generate_image(
        prompt: str,
        negative_prompt: str,
        aspect_ratio: str,
        seed: float | None,
        request: gr.Request,
    ) -> tuple[str, str, int]:
        """Generate an image with Stable Diffusion 3.5 Large and save it as a PNG with its
        parameters in the studio's gallery.

        Args:
            prompt: What the image should show, e.g. "a lighthouse at dusk, oil painting".
            negative_prompt: What the image should not show; may be empty.
            aspect_ratio: Width to height, one of {ratios}.
            seed: A seed from 0 to 2147483647 for a reproducible image; -1 picks a random one.

        Returns:
            The generated image, the path of the saved PNG, and the seed used.
        """
        authorization = request.headers.get("authorization") if request else None
        accepted, owner = credentials.identify(authorization)
        if not accepted:
            raise gr.Error(_unauthorized(credentials, authorization).message, title="Unauthorized")
        try:
            chosen = _seed(seed)
            generation = build_request(
                prompt,
                negative_prompt=negative_prompt,
                aspect_ratio=aspect_ratio or "1:1",
                seed=int(chosen) if isinstance(chosen, float) and chosen.is_integer() else chosen,
                randomize_seed=chosen is None,
                schema=studio.schema(),
            )
            with gate.slot():
                saved = await generate_one(studio, generation, owner)
        except ApiError as error:
            raise gr.Error(error.message, title=error.title, print_exception=False) from None
        except SD35Error as error:
            raise gr.Error(error.message, title=error.title, print_exception=False) from None
        path = str(saved.image.path)
        return path, path, saved.result.seed

    # Gradio reads the tool's description from the docstring (one line per argument).
    generate_image.__doc__ = (generate_image.__doc__ or "").replace("{ratios}", ", ".join(ratios))

    with page, gr.Column(visible=False):
        inputs = [
            gr.Textbox(label="Prompt"),
            gr.Textbox(label="Negative prompt", value=""),
            gr.Dropdown(ratios, value="1:1", label="Aspect ratio"),
            gr.Number(value=-1, precision=0, label="Seed"),
        ]
        outputs = [
            gr.Image(type="filepath", format="png", label="Image"),
            gr.Textbox(label="Saved PNG"),
            gr.Number(precision=0, label="Seed used"),
        ]
        trigger = gr.Button(visible=False)
        trigger.click(
            generate_image,
            inputs,
            outputs,
            api_name="generate_image",
            queue=False,
            show_progress="hidden",
        )
    _only_tool(page, "generate_image")


def _only_tool(page: gr.Blocks, api_name: str) -> None:
    """Keep every public endpoint but ``api_name`` out of the MCP tool list: Gradio lists an
    endpoint as a tool unless its function carries an ``_mcp_type`` other than "tool" (what
    ``gr.mcp.resource``/``gr.mcp.prompt`` set); "none" makes it neither."""
    for block_fn in page.fns.values():
        fn = block_fn.fn
        if fn is None or block_fn.api_visibility != "public" or block_fn.api_name == api_name:
            continue
        with contextlib.suppress(AttributeError, TypeError):
            fn._mcp_type = "none"


__all__ = [
    "MODELS",
    "MODEL_ALIASES",
    "MODEL_ID",
    "ApiError",
    "ApiService",
    "Credentials",
    "Gate",
    "add_mcp_tool",
    "api_error",
    "gate_for",
    "mount_api",
]
