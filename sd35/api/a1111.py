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
from typing import Any

from fastapi import APIRouter
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse

from sd35.api.errors import ApiError, invalid
from sd35.api.jobs import Job, generate_many
from sd35.api.parsing import (
    MODEL_ID,
    count_field,
    json_body,
    optional_text,
    resolve_model,
    seed_or_random,
)
from sd35.api.service import ApiService, Handler, Handlers, Route, png_b64
from sd35.metadata import to_a1111
from sd35.params import GenerationRequest, batch_requests, build_request
from sd35.studio import Studio

#: Images per request (batch_size × n_iter).
MAX_A1111_IMAGES = 8
#: The sampler SD 3.5 uses (FlowMatchEulerDiscreteScheduler), as A1111 clients expect to see one.
SAMPLER = "Euler"


def a1111_error(error: ApiError) -> JSONResponse:
    """AUTOMATIC1111's own error body (its api_middleware): error, detail, body, errors."""
    body = {"error": error.title, "detail": error.message, "body": "", "errors": error.message}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def a1111_request(data: dict[str, Any], studio: Studio) -> tuple[GenerationRequest, int]:
    """(request, image count) from an AUTOMATIC1111 ``txt2img`` body; fields that mean nothing
    here (sampler, hires fix, scripts, …) are ignored."""
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
    seed = seed_or_random(data.get("seed"))
    schema = studio.schema()
    request = build_request(
        prompt,
        negative_prompt=optional_text(data, "negative_prompt"),
        width=_default(data.get("width"), int(schema.width.default)),
        height=_default(data.get("height"), int(schema.height.default)),
        guidance_scale=data.get("cfg_scale"),
        num_inference_steps=data.get("steps"),
        seed=seed,
        randomize_seed=seed is None,
        schema=schema,
    )
    return request, batch_size * n_iter


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


class A1111Handlers(Handlers):
    """The AUTOMATIC1111 route handlers."""

    async def txt2img(self, request: Request, owner: str | None) -> dict[str, Any]:
        data = await json_body(request)
        generation, count = a1111_request(data, self.studio)
        requests = batch_requests(generation, count)
        with self.gate.slot(), self.gate.track(Job(owner, count)) as job:
            results = await generate_many(self.studio, requests, owner, job)
        send_images = data.get("send_images", True) is not False
        images = (
            [await asyncio.to_thread(png_b64, saved.image.path) for saved in results]
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
        data = await json_body(request)
        if "sd_model_checkpoint" in data:
            resolve_model(data["sd_model_checkpoint"])
        return {}  # nothing else is settable here; accepted so clients that save options work


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
    handlers = A1111Handlers(service)
    routes = [
        Route("POST", "/sdapi/v1/txt2img", handlers.txt2img),
        Route("GET", "/sdapi/v1/progress", handlers.progress),
        Route("POST", "/sdapi/v1/interrupt", handlers.interrupt),
        Route("POST", "/sdapi/v1/skip", handlers.skip),
        Route("GET", "/sdapi/v1/sd-models", handlers.sd_models),
        Route("GET", "/sdapi/v1/options", handlers.get_options),
        Route("POST", "/sdapi/v1/options", handlers.set_options),
        Route("POST", "/sdapi/v1/refresh-checkpoints", _constant(None)),
        *(
            Route("GET", f"/sdapi/v1/{name}", _constant(value))
            for name, value in A1111_CONSTANTS.items()
        ),
    ]
    return service.router(a1111_error, routes)
