"""The OpenAI Images API (``/v1/images/generations``, ``/v1/images/files/…``, ``/v1/models``):
for the ``openai`` package, Open WebUI's "OpenAI" image engine, LibreChat and friends."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, NamedTuple

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from sd35.api import compat
from sd35.api.errors import ApiError, invalid, not_text_to_image
from sd35.api.jobs import generate_images
from sd35.api.parsing import (
    MODEL_ID,
    MODELS,
    count_field,
    json_body,
    lenient_request,
    optional_text,
    resolve_model,
)
from sd35.api.service import ApiService, Handlers, error_response, png_b64, route
from sd35.params import GenerationRequest
from sd35.studio import Studio

#: Images per request (OpenAI's own limit for dall-e-2 and the GPT image models); they run one
#: after another.
MAX_OPENAI_IMAGES = 10
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")
#: OpenAI image routes the Space cannot serve (it only does text-to-image).
UNSUPPORTED_OPENAI = ("/v1/images/edits", "/v1/images/variations")


def openai_error(error: ApiError) -> JSONResponse:
    """OpenAI's error body: ``{"error": {message, type, code, param}}``."""
    fields = {"message": error.message, "type": error.kind, "code": error.code}
    return error_response(error, {"error": {**fields, "param": error.param}})


class OpenAIRequest(NamedTuple):
    """An ``images/generations`` body as this server runs it."""

    generation: GenerationRequest
    n: int
    response_format: str
    adjustments: list[compat.Adjustment]


def openai_request(data: dict[str, Any], studio: Studio) -> OpenAIRequest:
    """The request, count and response format for an OpenAI ``images/generations`` body, with
    sizes, guidance and steps the Space would refuse mapped onto what it accepts (noted in
    ``adjustments``). Quality, style, background and similar OpenAI options are ignored."""
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt is required: describe the image.", "prompt")
    resolve_model(data.get("model"))
    if data.get("stream"):
        raise invalid("Streaming is not supported here; leave stream unset.", "stream")
    n = count_field(data, "n", 1, MAX_OPENAI_IMAGES)
    response_format = compat.response_format_for(data.get("model"), data.get("response_format"))
    schema = studio.schema()
    notes: list[compat.Adjustment] = []
    size = data.get("size")
    width = height = None
    if size is not None and size != "auto":
        match = _SIZE.match(size) if isinstance(size, str) else None
        if match is None:
            raise invalid(
                f"size must look like 1024x768, or be auto (any size from {compat.MIN_SIDE} to "
                f"{compat.MAX_SIDE} per side is mapped onto the Space's sizes).",
                "size",
            )
        width, height = compat.fit_dimensions(
            int(match.group(1)), int(match.group(2)), schema, notes
        )
    request = lenient_request(
        prompt,
        data,
        schema,
        notes,
        size=(width, height),
        guidance="guidance_scale",
        steps="num_inference_steps",
        aspect_ratio=optional_text(data, "aspect_ratio") or "1:1",
    )
    return OpenAIRequest(request, n, response_format, notes)


def _model_card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1729555200, "owned_by": "stabilityai"}


class OpenAIHandlers(Handlers):
    """The OpenAI route handlers."""

    @route("POST", "/v1/images/generations")
    async def images_generations(self, request: Request, owner: str | None) -> dict[str, Any]:
        data = await json_body(request)
        asked = openai_request(data, self.studio)
        generation = asked.generation
        extra = {"api_adjustments": compat.adjustment_notes(asked.adjustments)}
        with self.gate.slot():
            results = await generate_images(
                self.studio, generation, asked.n, owner, None, extra if asked.adjustments else None
            )
        items = []
        for saved in results:
            item: dict[str, Any] = {"revised_prompt": generation.prompt, "seed": saved.result.seed}
            if asked.response_format == "b64_json":
                item["b64_json"] = await asyncio.to_thread(png_b64, saved.image.path)
            else:
                token = self.links.issue(saved.image.path)
                item["url"] = str(request.url_for("sd35_image_link", token=f"{token}.png"))
            items.append(item)
        return {
            "created": int(time.time()),
            "data": items,
            "size": f"{generation.width}x{generation.height}",
            "output_format": "png",
        }

    async def image_link(self, request: Request) -> Response:
        """``GET /v1/images/files/<token>.png``: the one image a link names, without
        credentials (the token is the credential), until it expires."""
        token = request.path_params["token"].removesuffix(".png")
        path = self.links.resolve(token)
        if path is None or not await asyncio.to_thread(path.is_file):
            return openai_error(
                ApiError(
                    404,
                    "No such image link, or it has expired (links work for one hour); "
                    "generate again, or ask for response_format b64_json.",
                    code="not_found",
                    title="Not found",
                )
            )
        return FileResponse(
            path,
            media_type="image/png",
            filename=path.name,
            headers={"cache-control": "private, max-age=3600"},
        )

    @route("GET", "/v1/models")
    async def models(self, request: Request, owner: str | None) -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(model) for model in MODELS]}

    @route("GET", "/v1/models/{model}")
    async def model(self, request: Request, owner: str | None) -> dict[str, Any]:
        model = request.path_params["model"]
        try:
            resolve_model(model)
        except ApiError:
            raise ApiError(
                404,
                f"The model {model!r} does not exist here; this server offers {MODEL_ID}.",
                code="model_not_found",
                param="model",
                title="Not found",
            ) from None
        return _model_card(model.strip().lower())

    @route("POST", UNSUPPORTED_OPENAI[0])
    @route("POST", UNSUPPORTED_OPENAI[1])
    async def unsupported(self, request: Request, owner: str | None) -> dict[str, Any]:
        raise not_text_to_image(request.url.path)


def openai_router(service: ApiService) -> APIRouter:
    """The OpenAI routes, errors in OpenAI's shape."""
    handlers = OpenAIHandlers(service)
    router = service.router(openai_error, handlers.routes())
    # No credentials on this one: like OpenAI's image URLs, the unguessable token is the key,
    # so a tool's server can fetch the image it was given. Named for ``url_for``.
    router.add_api_route(
        "/v1/images/files/{token}",
        handlers.image_link,
        methods=["GET"],
        include_in_schema=False,
        name="sd35_image_link",
    )
    return router
