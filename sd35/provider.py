"""The seed's provider interface: ``StabilityAI_SD35Large.create_async_generator``.

It keeps the class attributes and call signature of g4f's provider of the same name, but is
built on ``SpaceClient``: the proxy covers every request, errors keep their meaning, the
Space's own defaults are used, and the final image is saved to the gallery instead of being
left on the Space's temporary URL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sd35.errors import InvalidRequestError
from sd35.params import build_request
from sd35.space_client import DEFAULT_SPACE, Preview, Progress, Queued, Result, SpaceClient

Messages = list[dict[str, Any]]


@dataclass
class ImageResponse:
    """The final image: ``url`` names it (a ``file://`` URI of the PNG in the gallery).

    The provider hands it over the moment the Space's image is in, as early as the seed gave
    its URL, while the PNG is still being written: ``await saved()`` (or ``wait_saved()``)
    waits for the file. Iterating the provider to its end waits for it too."""

    url: str
    alt: str
    path: Path
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    saving: Future[Any] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"![{self.alt}]({self.url})"

    def wait_saved(self, timeout: float | None = None) -> Path:
        """Block until the PNG is stored; return its path (raises what saving raised)."""
        if self.saving is not None:
            self.saving.result(timeout)
        return self.path

    async def saved(self) -> Path:
        """Wait until the PNG is stored; return its path (raises what saving raised)."""
        if self.saving is not None:
            await asyncio.wrap_future(self.saving)
        return self.path


@dataclass
class ImagePreview(ImageResponse):
    """An intermediate frame (only from Spaces that stream previews)."""


@dataclass
class ProgressUpdate:
    """Queue position and sampler progress; yielded only when ``yield_progress=True``."""

    event: Queued | Progress


class StabilityAI_SD35Large:
    """Stable Diffusion 3.5 Large on its Hugging Face Space, as an async generator provider."""

    label = "StabilityAI SD-3.5-Large"
    url = "https://stabilityai-stable-diffusion-3-5-large.hf.space"
    api_endpoint = "/gradio_api/call/infer"
    working = True
    default_model = "stabilityai-stable-diffusion-3.5-large"
    default_image_model = default_model
    model_aliases: ClassVar[dict[str, str]] = {
        "sd-3.5": default_model,
        "sd-3.5-large": default_model,
        # The seed's own provider id, as g4f spells it (dashes only).
        "stabilityai-stable-diffusion-3-5-large": default_model,
    }
    image_models: ClassVar[list[str]] = list(model_aliases)
    models = image_models
    #: Where final images are saved (as PNG with metadata, in the gallery layout).
    output_dir: Path = Path("outputs")

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """Resolve ``model`` (empty, the id, or an alias) or raise naming the known models."""
        if not model or model == cls.default_model:
            return cls.default_model
        if model in cls.model_aliases:
            return cls.model_aliases[model]
        known = ", ".join([cls.default_model, *cls.model_aliases])
        raise InvalidRequestError("model", model, f"Unknown model {model!r}; use one of: {known}.")

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Messages,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        api_key: str | None = None,
        proxy: str | None = None,
        aspect_ratio: str = "1:1",
        width: int | None = None,
        height: int | None = None,
        guidance_scale: float = 4.5,
        num_inference_steps: int | None = None,
        seed: int = 0,
        randomize_seed: bool = True,
        **kwargs: Any,
    ) -> AsyncIterator[ImagePreview | ImageResponse | ProgressUpdate]:
        """Generate one image; yield ``ImagePreview`` frames as the Space streams them, then
        one ``ImageResponse``. Leaving the loop early cancels the remote job.

        ``num_inference_steps=None`` uses the Space's own default (40). Extra keyword
        arguments: ``timeout`` (seconds for the whole job), ``output_dir``, ``user`` (gallery
        owner), ``yield_progress`` (also yield ``ProgressUpdate`` items).
        """
        cls.get_model(model)
        text = prompt if prompt is not None else last_user_message(messages)
        client = _client_for(cls.url, api_key, proxy, float(kwargs.get("timeout", 900.0)))
        # Validate against what the Space declares; the client that reads the schema
        # goes back to the pool and runs the job, so this costs no extra connection.
        schema = await asyncio.to_thread(client.schema)
        request = build_request(
            text,
            negative_prompt=negative_prompt,
            aspect_ratio=aspect_ratio,
            width=width,
            height=height,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            seed=seed,
            randomize_seed=randomize_seed,
            schema=schema,
        )
        from sd35.studio import open_store, store_result  # local: keeps it importable alone

        # Opened (and reconciled, the first time) while the job is under way, not after it.
        store = await asyncio.to_thread(
            open_store, Path(kwargs.get("output_dir") or cls.output_dir)
        )
        async for event in client.generate(request):
            if isinstance(event, Preview):
                yield ImagePreview(
                    url=event.path.resolve().as_uri(),
                    alt=request.prompt,
                    path=event.path,
                    seed=request.seed,
                    options={"index": event.index},
                )
            elif isinstance(event, Result):
                # The PNG's name is fixed now and the response goes out at once; the PNG is
                # written meanwhile (a caller that stops here still gets it: the thread
                # finishes on its own) and this generator ends only once it is stored.
                slot = store.reserve()
                saving = _SAVER.submit(
                    store_result,
                    store,
                    event,
                    space=client.space,
                    user=kwargs.get("user"),
                    reservation=slot,
                )
                yield ImageResponse(
                    url=slot.path.as_uri(),
                    alt=request.prompt,
                    path=slot.path,
                    seed=event.seed,
                    options={"elapsed": event.elapsed, "id": slot.id, **request.to_dict()},
                    saving=saving,
                )
                await asyncio.wrap_future(saving)
            elif kwargs.get("yield_progress") and isinstance(event, Queued | Progress):
                yield ProgressUpdate(event)


#: Writes the providers' PNGs; its threads outlive a caller that stops at the response.
_SAVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sd35-provider-save")

_clients: dict[tuple[str, str | None, str | None, float], SpaceClient] = {}
_clients_lock = threading.Lock()


def _client_for(url: str, token: str | None, proxy: str | None, timeout: float) -> SpaceClient:
    """One ``SpaceClient`` per target, token, proxy and timeout, kept between calls: its
    idle connections and the Space's schema then serve the next call (~30 ms saved each)."""
    key = (url, token, proxy, timeout)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = SpaceClient(url, token=token, proxy=proxy, timeout=timeout)
        return _clients[key]


def last_user_message(messages: Iterable[Mapping[str, Any]] | Mapping[str, Any] | None) -> str:
    """The text of the last ``user`` message; content may be a string or a list of parts."""
    if messages is None:
        return ""
    if isinstance(messages, Mapping):
        messages = [messages]
    for message in reversed(list(messages)):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [
                part.get("text", "") if isinstance(part, Mapping) else str(part)
                for part in content
                if not isinstance(part, Mapping) or part.get("type", "text") == "text"
            ]
            return " ".join(p for p in parts if p)
    return ""


__all__ = ["DEFAULT_SPACE", "ImagePreview", "ImageResponse", "StabilityAI_SD35Large"]
