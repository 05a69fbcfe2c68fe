"""The job API (``/api/v1/jobs``, ``/api/v1/queue/…``): add images to the studio's queue and
follow them, with the same credentials as the other APIs. Each user sees only their own jobs
(another's id answers 404). Errors: ``{"error": {"message", "code", "param", "title"}}``.

* ``POST /api/v1/jobs``: the Space's own field names plus ``count`` (1–16) → ``202``
  ``{"jobs": [...]}``, stored before the answer; a bad value → ``400`` naming the field and
  its range, nothing stored; over ``--max-queue`` waiting jobs → ``429`` ``queue_full``.
* ``GET /api/v1/jobs`` (newest first, ``?state=``, ``?limit=``), ``GET /api/v1/jobs/{id}``.
* ``DELETE /api/v1/jobs/{id}`` cancels (a running job's remote job too).
* ``POST /api/v1/queue/pause`` / ``resume``: start no more of your jobs / start again.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from sd35.api.errors import ApiError, invalid
from sd35.api.parsing import json_body
from sd35.api.service import ApiService, Handlers, error_response, route
from sd35.jobs import STATES, Job, QueueLimitError
from sd35.params import INPUT_ORDER, GenerationRequest

#: Jobs one POST may add.
MAX_COUNT = 16
_FIELDS = frozenset({*INPUT_ORDER, "count", "backend"})  # backend: pin (issue 16)


def queue_error(error: ApiError) -> JSONResponse:
    """The job API's error body: ``{"error": {message, code, param, title}}``."""
    fields = {"message": error.message, "code": error.code, "param": error.param}
    return error_response(error, {"error": {**fields, "title": error.title}})


def iso(epoch: float | None) -> str | None:
    """Local time with its offset, to the second (ISO 8601)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def job_request(data: dict[str, Any], schema: Any) -> tuple[GenerationRequest, int]:
    """The validated request a POST body asks for and how many images of it; 400 otherwise."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        allowed = ", ".join(sorted(_FIELDS))
        raise invalid(f"Unknown field {unknown[0]!r} (allowed: {allowed}).", unknown[0])
    if not isinstance(data.get("prompt"), str) or not data["prompt"].strip():
        raise invalid("prompt is required: describe the image.", "prompt")
    count = data.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise invalid(f"count = {count!r} is out of range (allowed: 1 to {MAX_COUNT}).", "count")
    values = {name: data[name] for name in INPUT_ORDER if data.get(name) is not None}
    values.setdefault("guidance_scale", schema.guidance_scale.default)
    values.setdefault("num_inference_steps", int(schema.num_inference_steps.default))
    # A seed given without randomize_seed means that seed.
    values.setdefault("randomize_seed", "seed" not in values)
    return GenerationRequest(**values).validate(schema), count


def _queue_stopped() -> ApiError:
    return ApiError(503, "The queue is not running.", code="queue_stopped")


class QueueHandlers(Handlers):
    """The job API's handlers; the studio's scheduler does the work."""

    @property
    def scheduler(self) -> Any:
        if self.studio.scheduler is None:
            raise _queue_stopped()
        return self.studio.scheduler

    def describe(self, request: Request, job: Job) -> dict[str, Any]:
        """One job as JSON."""
        item: dict[str, Any] = {
            "id": job.id,
            "state": job.state,
            "prompt": job.prompt,
            "created": iso(job.created),
            "updated": iso(job.updated),
            "source": job.source,
            "attempts": job.attempts,
            "backend": job.backend,
            "request": job.request.to_dict() if job.request is not None else None,
            "history": [{"at": iso(at), "note": note} for at, note in job.history],
        }
        if job.state in ("queued", "waiting"):
            item["position"] = self.scheduler.store.position(job)
        if job.state == "waiting":
            item["retry_at"] = iso(job.retry_at)
            item["reason"] = job.reason
        if job.state == "failed":
            item["error"] = {"title": job.error_title, "message": job.error_message}
        if job.state == "done" and job.image_id:
            item["image"] = {"id": job.image_id}
            stored = self.studio.store.get(job.image_id, job.owner)
            if stored is not None:  # a link like OpenAI's: that PNG only, for an hour
                token = self.links.issue(stored.path)
                url = request.url_for("sd35_image_link", token=f"{token}.png")
                item["image"]["url"] = str(url)
        return item

    def _job(self, request: Request, owner: str | None) -> Job:
        job = self.scheduler.store.get(request.path_params["job_id"], owner)
        if job is None:
            raise ApiError(404, "No such job here.", code="not_found", title="Not found")
        return job

    @route("POST", "/api/v1/jobs")
    async def add_jobs(self, request: Request, owner: str | None) -> JSONResponse:
        _same_site(request)
        data = await json_body(request)
        generation, count = job_request(data, self.studio.schema())
        if self.studio.scheduler is None:
            raise _queue_stopped()
        try:
            jobs = await asyncio.to_thread(
                self.studio.submit,
                generation,
                count,
                owner,
                source="api",
                backend=data.get("backend") or None,
            )
        except QueueLimitError as error:
            raise ApiError(429, error.message, code="queue_full", title=error.title) from None
        body = {"jobs": [self.describe(request, job) for job in jobs]}
        return JSONResponse(body, status_code=202)

    @route("GET", "/api/v1/jobs")
    async def list_jobs(self, request: Request, owner: str | None) -> dict[str, Any]:
        state = request.query_params.get("state")
        if state is not None and state not in STATES:
            raise invalid(f"state must be one of {', '.join(STATES)}.", "state")
        limit_text = request.query_params.get("limit", "100")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            raise invalid("limit must be a whole number from 1 to 1000.", "limit")
        jobs = await asyncio.to_thread(
            self.scheduler.store.list,
            owner,
            states=(state,) if state else None,
            limit=int(limit_text),
        )
        return {"jobs": [self.describe(request, job) for job in jobs]}

    @route("GET", "/api/v1/jobs/{job_id}")
    async def get_job(self, request: Request, owner: str | None) -> dict[str, Any]:
        return self.describe(request, await asyncio.to_thread(self._job, request, owner))

    @route("DELETE", "/api/v1/jobs/{job_id}")
    async def cancel_job(self, request: Request, owner: str | None) -> dict[str, Any]:
        _same_site(request)
        job = await asyncio.to_thread(self._job, request, owner)
        if not await asyncio.to_thread(self.scheduler.cancel, job.id, owner):
            raise ApiError(
                409, f"The job is already {job.state}.", code="finished", title="Not cancelled"
            )
        return self.describe(request, self._job(request, owner))

    @route("POST", "/api/v1/queue/pause")
    async def pause_queue(self, request: Request, owner: str | None) -> dict[str, Any]:
        _same_site(request)
        await asyncio.to_thread(self.scheduler.pause, owner)
        return {"paused": True}

    @route("POST", "/api/v1/queue/resume")
    async def resume_queue(self, request: Request, owner: str | None) -> dict[str, Any]:
        _same_site(request)
        await asyncio.to_thread(self.scheduler.resume, owner)
        return {"paused": False}


def _same_site(request: Request) -> None:
    """Refuse a state-changing call from another site's page (a browser says where it came
    from); tools that send no ``Origin`` are not browsers and pass."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise ApiError(403, "Cross-site requests are refused.", code="cross_site")
    origin = request.headers.get("origin")
    if origin and urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "Cross-site requests are refused.", code="cross_site")


def queue_router(service: ApiService) -> APIRouter:
    """The job API's routes, errors in its own shape."""
    return service.router(queue_error, QueueHandlers(service).routes())
