"""Small helpers every panel uses: binding handlers to the studio, the user, image display."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr


def bind(handler: Callable[..., Any], studio: Any) -> Callable[..., Any]:
    """``handler(studio, ...)`` as an event function Gradio can wire: the studio bound, the
    rest of the signature (and its type hints, which tell Gradio where ``gr.Request`` and
    ``gr.SelectData`` go) kept. ``functools.partial`` would hide those hints from Gradio."""
    signature = inspect.signature(handler)
    first, *rest = signature.parameters
    hints = typing.get_type_hints(handler)
    hints.pop(first, None)
    if inspect.isasyncgenfunction(handler):

        async def bound(*args: Any, **kwargs: Any) -> Any:
            async for item in handler(studio, *args, **kwargs):
                yield item

    elif inspect.iscoroutinefunction(handler):

        async def bound(*args: Any, **kwargs: Any) -> Any:
            return await handler(studio, *args, **kwargs)

    else:

        def bound(*args: Any, **kwargs: Any) -> Any:
            return handler(studio, *args, **kwargs)

    bound.__name__ = bound.__qualname__ = handler.__name__
    bound.__doc__ = handler.__doc__
    bound.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[signature.parameters[name] for name in rest]
    )
    bound.__annotations__ = hints
    return bound


def user_of(request: gr.Request | None) -> str | None:
    """The logged-in user of a page event (None without ``--auth``)."""
    return getattr(request, "username", None) if request is not None else None


def image_value(studio: Any, path: Path | str) -> str:
    """What an image component is given to show an image: a path Gradio may copy into its
    cache, after the caller checked the owner (``sd35.page_files``: the output folder itself
    is never served)."""
    return studio.files.for_page(path)
