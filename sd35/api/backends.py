"""``GET /api/v1/backends``: each configured backend, in failover order, with its state
(ready, waiting until a time, out of credits, unreachable, not usable), its capabilities and
whether it can bill the user's account. Same credentials as the other APIs; never a token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from sd35.api.errors import ApiError
from sd35.api.service import ApiService, Route
from sd35.backends import failover


def _shape(error: ApiError) -> JSONResponse:
    return JSONResponse(
        {"error": {"title": error.title, "message": error.message}},
        status_code=error.status,
        headers=error.headers,
    )


def backends_router(service: ApiService) -> APIRouter:
    async def backends(request: Request, owner: str | None) -> dict[str, Any]:
        return {"backends": [failover.describe(s) for s in service.studio.backend_states()]}

    return service.router(_shape, [Route("GET", "/api/v1/backends", backends)])
