"""The plumbing every HTTP route shares: one studio, its gate and the API credentials; the
owner of a request; and the wrapper that turns a handler into an endpoint answering errors in
its dialect's shape. The dialect modules (``openai``, ``a1111``) add their handlers through it.

Handlers are async and never block the event loop (store and file work runs in threads).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sd35.api.auth import Credentials, unauthorized
from sd35.api.errors import ApiError, api_error, internal
from sd35.api.jobs import gate_of
from sd35.api.links import ImageLinks
from sd35.errors import SD35Error
from sd35.studio import Studio

log = logging.getLogger("sd35.api")

#: A route handler: the request and its authenticated owner in, a JSON-able value or a
#: ``Response`` out.
Handler = Callable[[Request, str | None], Awaitable[Any]]
#: How one dialect shapes an ``ApiError`` into a response body.
Shape = Callable[[ApiError], JSONResponse]


class Route(NamedTuple):
    """One route of a dialect: ``method path`` answered by ``handler``; ``name`` is for
    ``url_for`` (default: the endpoint's name)."""

    method: str
    path: str
    handler: Handler
    name: str | None = None


class ApiService:
    """The studio, its gate, the credentials and the image links, shared by every route."""

    def __init__(self, studio: Studio, credentials: Credentials) -> None:
        self.studio = studio
        self.credentials = credentials
        self.gate = gate_of(studio)
        #: Expiring, credential-free links to saved PNGs (OpenAI's ``url``, the job API).
        self.links = ImageLinks()

    def owner(self, request: Request) -> str | None:
        """Who sent ``request`` (None on an open server); ``ApiError`` 401 if nobody allowed."""
        authorization = request.headers.get("authorization")
        accepted, owner = self.credentials.identify(authorization)
        if not accepted:
            raise unauthorized(self.credentials, authorization)
        return owner

    def route(self, handler: Handler, shape: Shape) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint that authenticates, runs ``handler`` and answers any error in ``shape``
        (an unexpected one as a logged 500, so no traceback reaches the client)."""

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
                return shape(internal())
            return result if isinstance(result, Response) else JSONResponse(result)

        endpoint.__name__ = f"sd35_{handler.__name__}"
        return endpoint

    def router(self, shape: Shape, routes: Iterable[Route]) -> APIRouter:
        """A router of ``routes``, errors answered in ``shape``, none in the page's OpenAPI
        schema."""
        router = APIRouter()
        for route in routes:
            router.add_api_route(
                route.path,
                self.route(route.handler, shape),
                methods=[route.method],
                include_in_schema=False,
                name=route.name,
            )
        return router


def route(method: str, path: str) -> Callable[[Any], Any]:
    """Mark a ``Handlers`` method as the handler of ``method path`` (repeatable)."""

    def mark(handler: Any) -> Any:
        handler.__dict__.setdefault("sd35_routes", []).append((method, path))
        return handler

    return mark


class Handlers:
    """Base of one dialect's route handlers (each a ``Handler``, marked with ``route``): the
    service's studio, gate and image links."""

    def __init__(self, service: ApiService) -> None:
        self.studio = service.studio
        self.gate = service.gate
        self.links = service.links

    def routes(self) -> list[Route]:
        """The marked routes, in the order the handlers are defined."""
        return [
            Route(method, path, getattr(self, name))
            for name, member in vars(type(self)).items()
            for method, path in getattr(member, "sd35_routes", ())
        ]


def error_response(error: ApiError, body: dict[str, Any]) -> JSONResponse:
    """``body`` with the status and headers of ``error``."""
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def png_b64(path: Path) -> str:
    """A saved PNG as base64 text, as both dialects return images."""
    return base64.b64encode(path.read_bytes()).decode("ascii")
