"""The seed's provider interface: ``StabilityAI_SD35Large.create_async_generator``.

It keeps the class attributes and call signature of g4f's provider of the same name, but runs
through a ``Studio`` (``sd35.studio``): the proxy covers every request, errors keep their
meaning, the Space's own defaults are used, and the final image is saved to the gallery instead
of being left on the Space's temporary URL.

The class's studio is the one given to ``bind`` (e.g. the app's own), else one built the first
time a call needs it, for the class's ``url`` and ``output_dir``; a call that passes its own
``api_key``, ``proxy`` or ``timeout`` gets a Space client of its own for that call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sd35.errors import InvalidRequestError
from sd35.params import DEFAULT_SPACE, MODEL_ALIASES, MODEL_ID, GenerationRequest, build_request
from sd35.space_client import Preview, Progress, Queued, SpaceClient, space_url

if TYPE_CHECKING:
    from sd35.studio import Studio

#: Seconds for a whole job unless a call says otherwise (``timeout``).
DEFAULT_TIMEOUT = 900.0

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
    url = space_url(DEFAULT_SPACE).rstrip("/")  # the seed's spelling: no trailing slash
    api_endpoint = "/gradio_api/call/infer"
    working = True
    default_model = MODEL_ID
    default_image_model = default_model
    model_aliases: ClassVar[dict[str, str]] = dict.fromkeys(MODEL_ALIASES, default_model)
    image_models: ClassVar[list[str]] = list(model_aliases)
    models = image_models
    #: Where final images are saved (as PNG with metadata, in the gallery layout).
    output_dir: Path = Path("outputs")
    #: The studio given to ``bind`` (inherited by subclasses).
    _bound: ClassVar[Studio | None] = None

    @classmethod
    def bind(cls, studio: Studio | None) -> None:
        """Run this class's calls through ``studio`` (its Space client and gallery); None
        goes back to a studio built for ``url`` and ``output_dir``."""
        cls._bound = studio

    @classmethod
    def studio(cls, output_dir: str | Path | None = None) -> Studio:
        """The studio for a call saving into ``output_dir`` (default: the class's): the bound
        one, else the one built for this class (again if ``url`` or the folder changed).
        Blocking the first time (opening the gallery reconciles its index)."""
        from sd35.gallery import SQLiteGalleryStore
        from sd35.studio import Studio  # local: keeps this module importable alone

        folder = Path(output_dir or cls.output_dir).resolve()
        bound = cls._bound
        if bound is not None and (output_dir is None or bound.store.root.resolve() == folder):
            return bound
        built: tuple[Any, Studio] | None = cls.__dict__.get("_built")
        target = (cls.url, folder)
        if built is None or built[0] != target:
            client = SpaceClient(cls.url, timeout=DEFAULT_TIMEOUT)
            built = (target, Studio(client, SQLiteGalleryStore(folder)))
            cls._built = built  # type: ignore[attr-defined]  # this class's own, not a parent's
        return built[1]

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
        # Opened (and reconciled, the first time) before the job, off the event loop.
        studio = await asyncio.to_thread(cls.studio, kwargs.get("output_dir"))
        timeout = float(kwargs.get("timeout", DEFAULT_TIMEOUT))
        own_client = None
        if api_key or proxy or timeout != DEFAULT_TIMEOUT:  # this call's own settings
            from sd35.studio import Studio

            own_client = SpaceClient(cls.url, token=api_key, proxy=proxy, timeout=timeout)
            studio = Studio(own_client, studio.store)
        try:
            # Validate against what the Space declares; the client that reads the schema
            # goes back to the pool and runs the job, so this costs no extra connection.
            schema = await asyncio.to_thread(studio.client.schema)
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
            events = studio.run(request, kwargs.get("user"), announce_saving=True)
            async with contextlib.aclosing(events):
                async for item in _items(events, request, bool(kwargs.get("yield_progress"))):
                    yield item
        finally:
            if own_client is not None:
                own_client.close()


async def _items(
    events: AsyncIterator[Any], request: GenerationRequest, progress: bool
) -> AsyncIterator[ImagePreview | ImageResponse | ProgressUpdate]:
    """The provider's items for the studio's events of one image."""
    from sd35.studio import Saving

    async for event in events:
        if isinstance(event, Preview):
            yield ImagePreview(
                url=event.path.resolve().as_uri(),
                alt=request.prompt,
                path=event.path,
                seed=request.seed,
                options={"index": event.index},
            )
        elif isinstance(event, Saving):
            # The PNG's name is fixed and the response goes out at once; the PNG is written
            # meanwhile (a caller that stops here still gets it: the studio's saver finishes
            # on its own) and the provider ends only once it is stored.
            slot, result = event.reservation, event.result
            yield ImageResponse(
                url=slot.path.as_uri(),
                alt=request.prompt,
                path=slot.path,
                seed=result.seed,
                options={"elapsed": result.elapsed, "id": slot.id, **request.to_dict()},
                saving=event.done,
            )
        elif progress and isinstance(event, Queued | Progress):
            yield ProgressUpdate(event)


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
