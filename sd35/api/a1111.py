"""The AUTOMATIC1111 web API (``/sdapi/v1/txt2img``, ``/progress``, ``/interrupt``, ``/skip``
and the read-only routes clients call when they connect): for ``webuiapi`` and Open WebUI's
"Automatic1111" engine."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from fastapi import APIRouter
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse

from sd35.api import compat
from sd35.api.errors import ApiError, invalid, not_text_to_image
from sd35.api.jobs import Job, generate_images
from sd35.api.parsing import (
    count_field,
    json_body,
    lenient_request,
    resolve_model,
)
from sd35.api.service import (
    ApiService,
    Handler,
    Handlers,
    Route,
    error_response,
    png_b64,
    route,
)
from sd35.gallery import StoredImage
from sd35.metadata import ImageMetadata, to_a1111
from sd35.params import MODEL_ID, GenerationRequest
from sd35.studio import WAITING_IN_SPACE_QUEUE, Studio

#: Images per request (batch_size × n_iter); they run one after another.
MAX_A1111_IMAGES = 16
#: The sampler SD 3.5 uses (FlowMatchEulerDiscreteScheduler), as A1111 clients expect to see one.
SAMPLER = "Euler"
#: A1111 routes that need an input image, a model on this machine, or training: the Space only
#: does text-to-image. Any other unknown ``/sdapi/v1/…`` path gets the same 501.
UNSUPPORTED_A1111 = (
    "img2img",
    "extra-single-image",
    "extra-batch-images",
    "interrogate",
    "png-info",
    "unload-checkpoint",
    "reload-checkpoint",
    "create/embedding",
    "create/hypernetwork",
    "train/embedding",
    "train/hypernetwork",
)


def a1111_error(error: ApiError) -> JSONResponse:
    """AUTOMATIC1111's own error body (its api_middleware): error, detail, body, errors."""
    body = {"error": error.title, "detail": error.message, "body": "", "errors": error.message}
    return error_response(error, body)


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


class A1111Request(NamedTuple):
    """A ``txt2img`` body as this server runs it."""

    generation: GenerationRequest
    count: int
    adjustments: list[compat.Adjustment]


def a1111_request(data: dict[str, Any], studio: Studio) -> A1111Request:
    """The request and image count for an AUTOMATIC1111 ``txt2img`` body, with sizes, CFG and
    steps the Space would refuse mapped onto what it accepts (noted in ``adjustments``);
    fields that mean nothing here (sampler, hires fix, scripts, …) are ignored."""
    prompt = data.get("prompt")
    if prompt is None:
        prompt = ""
    batch_size = count_field(data, "batch_size", 1, MAX_A1111_IMAGES)
    n_iter = count_field(data, "n_iter", 1, MAX_A1111_IMAGES)
    if batch_size * n_iter > MAX_A1111_IMAGES:
        raise invalid(
            f"batch_size × n_iter = {batch_size * n_iter}; at most {MAX_A1111_IMAGES} images "
            "per request.",
            "batch_size",
        )
    schema = studio.schema()
    notes: list[compat.Adjustment] = []
    width, height = compat.fit_dimensions(
        _default(data.get("width"), int(schema.width.default)),
        _default(data.get("height"), int(schema.height.default)),
        schema,
        notes,
        field="width x height",
    )
    request = lenient_request(
        prompt, data, schema, notes, size=(width, height), guidance="cfg_scale", steps="steps"
    )
    return A1111Request(request, batch_size * n_iter, notes)


def _preview_b64(path: Path) -> str:
    """A preview frame (often WebP from the Space) as base64 PNG, as A1111 sends them."""
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


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


def nothing_to_show() -> ApiError:
    """The answer when /interrupt came before the Space sent any image or preview frame.

    Not 200 with ``images: []``: ``webuiapi``'s ``result.image`` is ``images[0]`` and raises
    IndexError on it, while any non-200 makes ``webuiapi`` raise its usual
    ``RuntimeError(status, text)``, and SillyTavern's server (which calls /interrupt itself when
    its user cancels) reports a failed generation; both handle that path already."""
    return ApiError(
        409,
        "Interrupted before the Space sent any image or preview frame: nothing to return.",
        code="interrupted",
        title="Interrupted",
    )


def _info(
    generation: GenerationRequest,
    stored: list[StoredImage],
    seeds: list[int],
    job: Job,
    data: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """A1111's ``info`` object: what was made (the true size) and what was changed."""
    extra_params = {"Adjustments": "; ".join(notes)} if notes else {}
    return {
        "prompt": generation.prompt,
        "all_prompts": [generation.prompt] * len(stored),
        "negative_prompt": generation.negative_prompt,
        "all_negative_prompts": [generation.negative_prompt] * len(stored),
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
        "extra_generation_params": extra_params,
        "index_of_first_image": 0,
        "infotexts": [to_a1111(image.meta) for image in stored],
        "styles": [],
        "job_timestamp": job.timestamp,
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": "sd35",
        "interrupted": job.interrupted,
        "interrupted_images": [bool(image.meta.extra.get("interrupted")) for image in stored],
        "adjustments": notes,
    }


class A1111Handlers(Handlers):
    """The AUTOMATIC1111 route handlers."""

    @route("POST", "/sdapi/v1/txt2img")
    async def txt2img(self, request: Request, owner: str | None) -> dict[str, Any]:
        data = await json_body(request)
        asked = a1111_request(data, self.studio)
        generation, notes = asked.generation, compat.adjustment_notes(asked.adjustments)
        extra = {"api_adjustments": notes} if notes else None
        job = Job(owner, asked.count, steps=generation.num_inference_steps)
        with self.gate.slot(), self.gate.track(job):
            results = await generate_images(self.studio, generation, asked.count, owner, job, extra)
        stored = [saved.image for saved in results]
        seeds = [saved.result.seed for saved in results]
        if job.interrupted and job.preview is not None:
            # What exists of the image that was running: its last preview frame, kept.
            partial = job.control.request or generation
            kept = await asyncio.to_thread(self._keep_preview, job, partial, owner, notes)
            if kept is not None:
                stored.append(kept)
                seeds.append(kept.meta.seed)
        if not stored and job.interrupted:
            raise nothing_to_show()
        send_images = data.get("send_images", True) is not False
        images = (
            [await asyncio.to_thread(png_b64, image.path) for image in stored]
            if send_images
            else []
        )
        info = _info(generation, stored, seeds or [generation.seed], job, data, notes)
        parameters = {
            **compat.without_credentials(data),
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

    def _keep_preview(
        self, job: Job, request: GenerationRequest, owner: str | None, notes: list[str]
    ) -> StoredImage | None:
        """Save the interrupted image's last preview frame in the gallery, marked as such
        (None when the frame can no longer be read)."""
        if job.preview is None:
            return None
        extra: dict[str, Any] = {"interrupted": True, "preview_step": job.step}
        if notes:
            extra["api_adjustments"] = notes
        meta = ImageMetadata.from_request(
            request, model=MODEL_ID, space=self.studio.client.space, extra=extra
        )
        try:
            with Image.open(job.preview) as frame:
                image = frame.convert("RGB")
        except OSError:  # e.g. the client's temporary folder went with the cancelled job
            return None
        return self.studio.store.save(image, meta, user=owner)

    @route("GET", "/sdapi/v1/progress")
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
            WAITING_IN_SPACE_QUEUE
            if job.queued
            else f"Image {job.job_no + 1} of {job.job_count}: step {job.step} of {job.steps}"
        )
        return _progress_body(fraction, eta, _state(job), current, text)

    @route("POST", "/sdapi/v1/interrupt")
    async def interrupt(self, request: Request, owner: str | None) -> dict[str, Any]:
        for job in self.gate.jobs_of(owner):
            job.control.interrupt()
        return {}

    @route("POST", "/sdapi/v1/skip")
    async def skip(self, request: Request, owner: str | None) -> dict[str, Any]:
        for job in self.gate.jobs_of(owner):
            job.control.skip()
        return {}

    @route("GET", "/sdapi/v1/sd-models")
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

    @route("GET", "/sdapi/v1/options")
    async def get_options(self, request: Request, owner: str | None) -> dict[str, Any]:
        return {
            "sd_model_checkpoint": MODEL_ID,
            "sd_checkpoint_hash": None,
            "samples_format": "png",
            "sd_vae": "Automatic",
            "CLIP_stop_at_last_layers": 1,
            "eta_noise_seed_delta": 0,
        }

    @route("POST", "/sdapi/v1/options")
    async def set_options(self, request: Request, owner: str | None) -> dict[str, Any]:
        data = await json_body(request)
        if "sd_model_checkpoint" in data:
            resolve_model(data["sd_model_checkpoint"])
        return {}  # nothing else is settable here; accepted so clients that save options work


async def _unsupported(request: Request, owner: str | None) -> Any:
    raise not_text_to_image(request.url.path)


def _constant(value: Any) -> Handler:
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


def a1111_router(service: ApiService) -> APIRouter:
    """The AUTOMATIC1111 routes, errors in A1111's shape."""
    routes = [
        *A1111Handlers(service).routes(),
        Route("POST", "/sdapi/v1/refresh-checkpoints", _constant(None)),
        *(
            Route("GET", f"/sdapi/v1/{name}", _constant(value))
            for name, value in A1111_CONSTANTS.items()
        ),
        *(Route("POST", f"/sdapi/v1/{name}", _unsupported) for name in UNSUPPORTED_A1111),
        # Last: anything else under /sdapi/v1 (extensions' routes, …) answers JSON, not a bare
        # 404 that a plugin would swallow.
        *(
            Route(method, "/sdapi/v1/{rest:path}", _unsupported)
            for method in ("GET", "POST", "PUT", "DELETE")
        ),
    ]
    return service.router(a1111_error, routes)
