"""``InferenceBackend``: Hugging Face Inference Providers and Inference Endpoints through
``huggingface_hub.InferenceClient.text_to_image`` (the library speaks each provider's HTTP).

Notes checked against the installed ``huggingface_hub`` source:

* ``InferenceClient(token=None)`` does not mean "no token": for a model given as a URL the
  hf-inference helper takes ``api_key or get_token()`` (``HF_TOKEN`` or a stored login) and
  sends it as ``authorization``. ``token=False`` is refused (TypeError). So for a URL that may
  not receive the token we pass ``headers={"authorization": None}``: the helper merges user
  headers over its own and drops None values, so no ``authorization`` header is sent at all.
* The call blocks (it reads the whole image): it runs in a worker thread, and ``cancel()``
  only stops our wait; the provider finishes (and bills) the image anyway.
* Provider calls with an ``hf_`` token go through Hugging Face's router; a provider's own key
  would go to the provider directly. We only ever pass the Hugging Face token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import io
import random
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import InferenceClient, constants
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled
from PIL import Image

from sd35.backends.base import Backend, BackendResult, BackendSpec, Capabilities
from sd35.backends.errors import (
    BackendAuthError,
    CreditsExhaustedError,
    ModelNotServedError,
    RateLimitedError,
)
from sd35.errors import (
    GenerationFailedError,
    InvalidRequestError,
    SD35Error,
    SpaceTimeoutError,
    SpaceUnavailableError,
    redact,
)
from sd35.params import MAX_SEED, GenerationRequest, NumberRange, SpaceSchema
from sd35.space_client import Event, Started
from sd35.tokens import may_receive_token

try:  # huggingface_hub 1.x/2.x talks through httpx2; older ones through httpx
    import httpx2

    _TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
        httpx.TransportError,
        httpx2.TransportError,
        OSError,
    )
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    _TRANSPORT_ERRORS = (httpx.TransportError, OSError)

#: Bounds we declare for SD 3.5 Large on Inference Providers and Endpoints (the providers do
#: not publish a schema; these are sizes every one of them accepts).
INFERENCE_BOUNDS = SpaceSchema(
    width=NumberRange(256, 1536, 64, 1024),
    height=NumberRange(256, 1536, 64, 1024),
    guidance_scale=NumberRange(0.0, 10.0, 0.1, 4.5),
    num_inference_steps=NumberRange(1, 50, 1, 28),
)

ClientFactory = Callable[..., InferenceClient]


class InferenceBackend(Backend):
    """``inference:PROVIDER[:MODEL]`` or ``endpoint:URL``. ``token`` is the Hugging Face token;
    it is sent only where ``may_receive_token`` allows (``token_origins``: granted origins)."""

    def __init__(
        self,
        spec: BackendSpec,
        *,
        token: str | None = None,
        token_origins: tuple[str, ...] = (),
        timeout: float = 900.0,
        download_dir: str | Path | None = None,
        client_factory: ClientFactory = InferenceClient,
    ) -> None:
        if spec.kind not in ("inference", "endpoint"):
            raise ValueError(f"not an inference backend: {spec.text}")
        self.spec = spec
        self.provider = "hf-inference" if spec.kind == "endpoint" else spec.target
        self.model = spec.model or spec.target
        self.timeout = timeout
        self.download_dir = Path(download_dir or tempfile.mkdtemp(prefix="sd35-inference-"))
        #: Whether this URL may receive a token at all (then huggingface_hub may also use a
        #: stored login here, which goes to Hugging Face's hosts only).
        self._trusted = may_receive_token(self.url, token_origins)
        self._token = token if token and self._trusted else None
        self.has_token = self._token is not None
        self._client_factory = client_factory
        self._client: InferenceClient | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Where the request (and a token) goes: the model's URL, or Hugging Face's router."""
        if self.model.startswith(("http://", "https://")):
            return self.model
        return constants.INFERENCE_PROXY_TEMPLATE.format(provider=self.provider)

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(
            previews=False,
            step_progress=False,
            cancel=False,
            bounds=INFERENCE_BOUNDS,
            can_bill=True,
        )

    def client(self) -> InferenceClient:
        """One client for every call (it holds no per-call state; built on first use)."""
        with self._lock:
            if self._client is None:
                # See the module notes: None headers are dropped, so nothing implicit is sent.
                headers = {} if self._trusted else {"authorization": None}
                self._client = self._client_factory(
                    provider=self.provider,
                    token=self._token,
                    timeout=self.timeout,
                    headers=headers,
                )
            return self._client

    def generate(self, request: GenerationRequest) -> InferenceGeneration:
        return InferenceGeneration(self, request)

    def call(self, request: GenerationRequest, seed: int) -> Image.Image:
        """The blocking library call, errors mapped into sd35's hierarchy."""
        try:
            return self.client().text_to_image(
                request.prompt,
                negative_prompt=request.negative_prompt or None,
                width=request.width,
                height=request.height,
                guidance_scale=request.guidance_scale,
                num_inference_steps=request.num_inference_steps,
                seed=seed,
                model=self.model,
            )
        except Exception as exc:
            raise map_inference_error(exc, self) from None

    def save(self, image: Image.Image) -> Path:
        """The image in the download folder, for the gallery to keep with its metadata.

        ``text_to_image`` hands back ``Image.open(BytesIO(answer))``, not yet decoded: the
        provider's own bytes are written as they came (re-encoding a 1024×1024 PNG costs
        ~150 ms); anything else is saved as a quickly compressed PNG."""
        self.download_dir.mkdir(parents=True, exist_ok=True)
        raw = getattr(image, "fp", None)
        kind = (image.format or "").lower()
        if isinstance(raw, io.BytesIO) and kind in ("png", "jpeg", "webp"):
            path = self.download_dir / f"{uuid.uuid4().hex}.{kind}"
            path.write_bytes(raw.getvalue())
            return path
        path = self.download_dir / f"{uuid.uuid4().hex}.png"
        image.save(path, format="PNG", compress_level=1)
        return path


class InferenceGeneration:
    """One ``text_to_image`` call as a generation: ``Started``, then a ``BackendResult``."""

    def __init__(self, backend: InferenceBackend, request: GenerationRequest) -> None:
        self._backend = backend
        self.request = request
        self._cancelled = threading.Event()
        self._wake: Callable[[], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop waiting (the provider cannot be told to stop; its answer is thrown away)."""
        self._cancelled.set()
        if self._wake is not None:
            self._wake()

    def _seed(self) -> int:
        # Providers draw their own random seed without telling it: draw it here, so the image's
        # metadata names the seed that reproduces it.
        return random.randint(0, MAX_SEED) if self.request.randomize_seed else self.request.seed

    def _work(self, seed: int, started: float) -> BackendResult:
        image = self._backend.call(self.request, seed)
        path = self._backend.save(image)
        return BackendResult(
            path=path,
            seed=seed,
            elapsed=time.monotonic() - started,
            request=self.request,
            backend=self._backend.name,
            model=self._backend.model,
        )

    def __iter__(self) -> Iterator[Event]:
        started = time.monotonic()
        seed = self._seed()
        if self.cancelled:
            return
        yield Started()
        future: concurrent.futures.Future[BackendResult] = concurrent.futures.Future()
        signal = threading.Event()
        self._wake = signal.set
        future.add_done_callback(lambda _: signal.set())

        def work() -> None:
            try:
                future.set_result(self._work(seed, started))
            except BaseException as exc:
                future.set_exception(exc)

        # A daemon thread: a cancelled call must not hold the process open at exit.
        threading.Thread(target=work, name="sd35-inference", daemon=True).start()
        signal.wait()
        if not self.cancelled:
            yield future.result()

    async def __aiter__(self) -> AsyncIterator[Event]:
        started = time.monotonic()
        seed = self._seed()
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        self._wake = lambda: loop.call_soon_threadsafe(woken.set)
        if self.cancelled:
            return
        yield Started()
        future = asyncio.ensure_future(asyncio.to_thread(self._work, seed, started))
        waiter = asyncio.ensure_future(woken.wait())
        try:
            await asyncio.wait({future, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if future.done() and not self.cancelled:
                yield future.result()
        finally:
            waiter.cancel()
            if not future.done():  # cancelled, or the consumer left: drop the answer
                future.add_done_callback(_ignore_outcome)


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # mark it retrieved


# --- error mapping -----------------------------------------------------------------------------


def map_inference_error(exc: BaseException, backend: InferenceBackend) -> SD35Error:
    """One sd35 error, with a message a person understands, for whatever the call raised."""
    if isinstance(exc, SD35Error):
        return exc
    name = backend.name
    secret = backend._token
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return _map_status(exc, backend)
    if isinstance(exc, InferenceTimeoutError):
        return SpaceTimeoutError(
            f"{name} sent no image within {backend.timeout:.0f} s. It may be overloaded; "
            "the job can go to the next backend."
        )
    if isinstance(exc, OfflineModeIsEnabled):
        return SpaceUnavailableError(
            f"{name} cannot be called: HF_HUB_OFFLINE is set, so huggingface_hub makes no "
            "requests. Unset it to use Inference Providers."
        )
    if isinstance(exc, _TRANSPORT_ERRORS):
        return SpaceUnavailableError(
            f"Could not reach {name} ({redact(type(exc).__name__, secret)}). Check your "
            "connection; the service may be down."
        )
    text = redact(str(exc), secret)
    if isinstance(exc, ValueError):
        if "api_key" in text or "auto-router" in text:
            return BackendAuthError(
                f"{name} needs a Hugging Face token (HF_TOKEN or --token-file) with the "
                "permission “Make calls to Inference Providers”."
            )
        if "not supported" in text or "No provider mapping" in text:
            return _not_served(backend)
    if isinstance(exc, Image.UnidentifiedImageError | OSError):
        return GenerationFailedError(f"{name} answered, but not with an image: {text}")
    return GenerationFailedError(f"Unexpected failure calling {name}: {text}")


def _map_status(exc: HfHubHTTPError, backend: InferenceBackend) -> SD35Error:
    response = exc.response
    status = response.status_code
    name = backend.name
    said = redact(exc.server_message or "", backend._token).strip()
    detail = f" (HTTP {status}: {said})" if said else f" (HTTP {status})"
    if status in (401, 403):
        need = "a Hugging Face token" if not backend.has_token else "a token"
        return BackendAuthError(
            f"{name} refused the request{detail}: it needs {need} with the permission "
            "“Make calls to Inference Providers” (create one in your Hugging Face settings, "
            "then set HF_TOKEN or --token-file)."
        )
    if status == 402:
        return CreditsExhaustedError(name, said)
    if status == 429:
        return RateLimitedError(name, retry_after(response.headers.get("retry-after")))
    if status == 404:
        return _not_served(backend, detail)
    if status in (400, 413, 422):
        return InvalidRequestError("request", None, f"{name} rejected the request{detail}.")
    if status >= 500:
        return SpaceUnavailableError(
            f"{name} is unavailable right now{detail}. The job can go to the next backend; "
            "this one is tried again later."
        )
    return GenerationFailedError(f"{name} failed{detail}.", space_message=said or None)


def _not_served(backend: InferenceBackend, detail: str = "") -> ModelNotServedError:
    return ModelNotServedError(
        f"The provider {backend.provider} does not serve the model {backend.model}{detail}. "
        "Choose another provider (or `auto`) or another model in --backend."
    )


def retry_after(value: str | None, *, now: datetime | None = None) -> timedelta | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as a wait, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(when - (now or datetime.now(timezone.utc)), timedelta(0))
