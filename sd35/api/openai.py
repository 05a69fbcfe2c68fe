"""The OpenAI Images API (``/v1/images/generations``, ``/v1/images/files/…``, ``/v1/models``):
for the ``openai`` package, Open WebUI's "OpenAI" image engine, LibreChat and friends."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from sd35.api.errors import ApiError, invalid
from sd35.api.jobs import generate_many
from sd35.api.parsing import (
    MODEL_ID,
    MODELS,
    count_field,
    json_body,
    optional_text,
    resolve_model,
    seed_or_random,
)
from sd35.api.service import ApiService, Handlers, Route, png_b64
from sd35.errors import InvalidRequestError
from sd35.gallery import StoredImage
from sd35.params import GenerationRequest, batch_requests, build_request
from sd35.studio import Studio

#: Images per request.
MAX_OPENAI_IMAGES = 4
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


def openai_error(error: ApiError) -> JSONResponse:
    """OpenAI's error body: ``{"error": {message, type, code, param}}``."""
    body = {
        "error": {
            "message": error.message,
            "type": error.kind,
            "code": error.code,
            "param": error.param,
        }
    }
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def openai_request(data: dict[str, Any], studio: Studio) -> tuple[GenerationRequest, int, str]:
    """(request, n, response_format) from an OpenAI ``images/generations`` body."""
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt is required: describe the image.", "prompt")
    resolve_model(data.get("model"))
    if data.get("stream"):
        raise invalid("Streaming is not supported here; leave stream unset.", "stream")
    n = count_field(data, "n", 1, MAX_OPENAI_IMAGES)
    response_format = data.get("response_format") or "b64_json"
    if response_format not in ("b64_json", "url"):
        raise invalid("response_format must be 'url' or 'b64_json'.", "response_format")
    schema = studio.schema()
    allowed = f"width {schema.width.describe()}, height {schema.height.describe()}"
    size = data.get("size")
    width = height = None
    if size is not None and size != "auto":
        match = _SIZE.match(size) if isinstance(size, str) else None
        if match is None:
            raise invalid(f"size must look like 1024x768, or be auto ({allowed}).", "size")
        width, height = int(match.group(1)), int(match.group(2))
    seed = seed_or_random(data.get("seed"))
    try:
        request = build_request(
            prompt,
            negative_prompt=optional_text(data, "negative_prompt"),
            aspect_ratio=optional_text(data, "aspect_ratio") or "1:1",
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
            raise invalid(f"size {size} is not allowed: {error.message}", "size") from None
        raise
    return request, n, response_format


def _model_card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1729555200, "owned_by": "stabilityai"}


class OpenAIHandlers(Handlers):
    """The OpenAI route handlers."""

    async def images_generations(self, request: Request, owner: str | None) -> dict[str, Any]:
        data = await json_body(request)
        generation, n, response_format = openai_request(data, self.studio)
        with self.gate.slot():
            results = await generate_many(self.studio, batch_requests(generation, n), owner, None)
        items = []
        for saved in results:
            item: dict[str, Any] = {"revised_prompt": generation.prompt, "seed": saved.result.seed}
            if response_format == "b64_json":
                item["b64_json"] = await asyncio.to_thread(png_b64, saved.image.path)
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


def openai_router(service: ApiService) -> APIRouter:
    """The OpenAI routes, errors in OpenAI's shape."""
    handlers = OpenAIHandlers(service)
    routes = [
        Route("POST", "/v1/images/generations", handlers.images_generations),
        Route("GET", "/v1/models", handlers.models),
        Route("GET", "/v1/models/{model}", handlers.model),
        # Named: ``images_generations`` builds its ``url`` answers with ``url_for``.
        Route("GET", "/v1/images/files/{image_id}", handlers.image_file, "sd35_image_file"),
    ]
    return service.router(openai_error, routes)
