"""The studio's APIs for other tools, served beside the page on the same port.

One app, not three: every route validates with ``sd35.params`` against the Space's schema,
generates through ``Studio.generate`` (the same Space client and error hierarchy as the page) and
leaves its images in the gallery with their metadata, owned by whoever authenticated (the Basic
user name, ``"api"`` for the Bearer key, or nobody on an open loopback server, so that the local
page lists them). Errors come in each API's own shape.

The package, one concern a module:

* ``errors``: ``ApiError`` (status, message, code) and the mapping from sd35's errors.
* ``auth``: ``Credentials`` (Bearer key, HTTP Basic users) and the 401 answer.
* ``jobs``: the ``Gate`` bounding generations (the studio holds it), ``Job`` progress,
  ``generate_images`` through ``Studio.generate``.
* ``parsing``: body parsing shared by the HTTP dialects, and the model names.
* ``compat``: the lenient mapping of the compatibility APIs (OpenAI model aliases and response
  formats, sizes fitted to the Space's, clamped guidance and steps, credential-free echoes).
* ``links``: the expiring, credential-free image links of ``response_format: "url"``.
* ``service``: ``ApiService``, the route plumbing (owner lookup, errors shaped per dialect).
* ``openai``: the OpenAI Images API (``/v1/images/generations``, ``/v1/models``).
* ``a1111``: the AUTOMATIC1111 API (``/sdapi/v1/txt2img``, ``/progress``, ``/interrupt``, …).
* ``mcp``: the ``generate_image`` tool on Gradio's MCP server.
* ``queue_api``: the job API (``/api/v1/jobs``) over the studio's queue (``sd35.scheduler``).

* ``guard``: the cross-site guard (Host, Origin, JSON bodies) in front of the whole app.

This module holds the entry points ``api_routes`` (for the app's constructor), ``mount_api``
(onto an app already running) and ``add_mcp_tool``.
"""

from __future__ import annotations

from collections.abc import Sequence

import gradio as gr
from fastapi import APIRouter
from starlette.routing import BaseRoute

from sd35.api.a1111 import a1111_router
from sd35.api.auth import Credentials
from sd35.api.backends import backends_router
from sd35.api.errors import ApiError, api_error
from sd35.api.jobs import Gate, gate_of
from sd35.api.mcp import add_mcp_tool
from sd35.api.openai import openai_router
from sd35.api.parsing import MODEL_ALIASES, MODEL_ID, MODELS
from sd35.api.queue_api import queue_router
from sd35.api.service import ApiService
from sd35.studio import Studio


def build_router(service: ApiService) -> APIRouter:
    """Every API route, on a router of its own (``mount_api`` splices its routes in)."""
    router = APIRouter()
    router.routes.extend(openai_router(service).routes)
    router.routes.extend(a1111_router(service).routes)
    router.routes.extend(queue_router(service).routes)
    router.routes.extend(backends_router(service).routes)  # issue 16
    return router


def api_routes(
    studio: Studio,
    *,
    api_key: str | None,
    api_auth: Sequence[tuple[str, str]],
) -> list[BaseRoute]:
    """Every API route, for ``FastAPI(routes=...)`` (``server.start`` passes them through
    ``launch(app_kwargs=...)``, so they answer from the server's first request on and come
    before every Gradio route)."""
    credentials = Credentials(api_key or None, tuple(api_auth or ()))
    return list(build_router(ApiService(studio, credentials)).routes)


def mount_api(
    page: gr.Blocks,
    studio: Studio,
    *,
    api_key: str | None,
    api_auth: Sequence[tuple[str, str]],
) -> None:
    """Serve the OpenAI and A1111 routes on the running page's FastAPI app (``page.app``).

    Called right after ``page.launch(prevent_thread_lock=True)``: ``launch`` is what creates
    ``page.app``, and the server is already answering. Routes added to a running Starlette app
    work: the router reads its route list at each request, and the middleware stack (built at
    the first request) wraps the router object, not a copy of its list. But Starlette takes
    the *first* matching route, and ``app.add_api_route`` would append ours after all of
    Gradio's, including its mounts (the MCP server's ``/gradio_api/mcp`` sub-app takes every
    path below it) and ``{path:path}`` routes. In Gradio 6.31 none of them matches ``/v1/…``
    or ``/sdapi/v1/…``, but a catch-all added by a later Gradio (or a root mount when the app
    is embedded) would silently shadow ours; so they are spliced in at the *front*, in place
    (one list operation under the GIL, safe while requests are being served).
    """
    page.app.router.routes[:0] = api_routes(studio, api_key=api_key, api_auth=api_auth)


__all__ = [
    "MODELS",
    "MODEL_ALIASES",
    "MODEL_ID",
    "ApiError",
    "ApiService",
    "Credentials",
    "Gate",
    "add_mcp_tool",
    "api_error",
    "api_routes",
    "build_router",
    "gate_of",
    "mount_api",
]
