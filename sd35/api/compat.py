"""The lenient mapping of the compatibility APIs: what other tools ask for, turned into what the
SD3.5 Large Space accepts, with a note of every change.

The page and the CLI stay strict (``sd35.params`` refuses out-of-range values there); the
OpenAI and AUTOMATIC1111 routes are meant as a drop-in for tools whose users cannot tune every
request, so here:

* OpenAI's image model names (``dall-e-2``, ``dall-e-3``, ``gpt-image-1`` and its variants),
  the seed's dashed id and any names in ``SD35_MODEL_ALIASES`` are aliases of SD3.5 Large;
  the model family decides the default ``response_format`` as OpenAI's own API does.
* Any size from 64 to 4096 per side becomes the nearest accepted size with the same aspect
  ratio (``params.fit_size``).
* Guidance and steps above the Space's maximum are clamped to it; guidance off the Space's
  step is rounded to it. Nonsense (negative, NaN, not a number) is left for ``params`` to refuse.

Each change is an ``Adjustment``; the routes report them (A1111 ``info``) and store them in the
image's metadata (``extra["api_adjustments"]``).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from sd35.api.errors import invalid
from sd35.params import NumberRange, SpaceSchema, finite_number, fit_size, format_number

#: OpenAI's DALL-E model names: their default ``response_format`` is ``url``.
DALLE_MODELS = ("dall-e-2", "dall-e-3")
#: OpenAI's GPT image models (``gpt-image-1``, ``gpt-image-1-mini``, ``gpt-image-1.5``, …,
#: ``chatgpt-image-latest``): they always answer ``b64_json``.
GPT_IMAGE_MODEL = re.compile(r"^(gpt-image-[\w.-]+|chatgpt-image-[\w.-]+)$")
#: Extra model names (comma-separated) taken as SD3.5 Large, for tools with a fixed model list.
ALIASES_ENV = "SD35_MODEL_ALIASES"

#: Sides a compatibility request may ask for; anything inside is fitted to the Space's sizes.
MIN_SIDE, MAX_SIDE = 64, 4096


def extra_aliases() -> tuple[str, ...]:
    """The names configured in ``SD35_MODEL_ALIASES`` (lower case)."""
    raw = os.environ.get(ALIASES_ENV, "")
    return tuple(name.strip().lower() for name in raw.split(",") if name.strip())


def model_family(model: Any) -> str | None:
    """``"dall-e"``, ``"gpt-image"`` or ``"alias"`` (a configured alias) for a compatible name
    that is not one of our own; None for anything else."""
    if not isinstance(model, str):
        return None
    name = model.strip().lower()
    if name in DALLE_MODELS:
        return "dall-e"
    if GPT_IMAGE_MODEL.match(name):
        return "gpt-image"
    if name in extra_aliases():
        return "alias"
    return None


def response_format_for(model: Any, asked: Any) -> str:
    """The ``response_format`` to answer with, following OpenAI's rules per model name: the GPT
    image models always ``b64_json``; the DALL-E names ``url`` unless asked otherwise; ours
    ``b64_json`` unless asked otherwise. 400 for a value that is neither."""
    family = model_family(model)
    if family == "gpt-image":
        return "b64_json"
    if asked is None or asked == "":
        return "url" if family == "dall-e" else "b64_json"
    if asked not in ("b64_json", "url"):
        raise invalid("response_format must be 'url' or 'b64_json'.", "response_format")
    return asked


@dataclass(frozen=True)
class Adjustment:
    """One change made to a request so that the Space accepts it."""

    field: str
    asked: Any
    used: Any
    reason: str

    def __str__(self) -> str:
        asked, used = format_number(self.asked), format_number(self.used)
        return f"{self.field} {asked} -> {used} ({self.reason})"


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole finite number (not a bool), else None."""
    if not finite_number(value) or value != int(value):
        return None
    return int(value)


def fit_dimensions(
    width: Any, height: Any, schema: SpaceSchema, notes: list[Adjustment], *, field: str = "size"
) -> tuple[Any, Any]:
    """``(width, height)`` the Space accepts for a requested size: unchanged when accepted (or
    when not whole numbers, for ``params`` to refuse), fitted when both sides are 64-4096,
    400 naming the limits otherwise."""
    w, h = _whole(width), _whole(height)
    if w is None or h is None:
        return width, height
    if schema.width.contains(w) and schema.height.contains(h):
        return w, h
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise invalid(
            f"{field} {w}x{h} is outside what this server maps ({MIN_SIDE} to {MAX_SIDE} per "
            f"side); the Space makes width {schema.width.describe()}, height "
            f"{schema.height.describe()}.",
            field,
        )
    size = fit_size(w, h, schema)
    notes.append(
        Adjustment(
            field,
            f"{w}x{h}",
            str(size),
            f"the Space makes {schema.width.describe()} per side; nearest size with the same "
            "aspect ratio",
        )
    )
    return size.width, size.height


def clamp_settings(
    data: dict[str, Any], schema: SpaceSchema, notes: list[Adjustment], *, guidance: str, steps: str
) -> tuple[Any, Any]:
    """The guidance and steps of ``data`` (under the dialect's own names), each clamped onto
    what the Space accepts (``clamp_number``)."""
    return (
        clamp_number(guidance, data.get(guidance), schema.guidance_scale, notes, integral=False),
        clamp_number(steps, data.get(steps), schema.num_inference_steps, notes, integral=True),
    )


def clamp_number(
    name: str, value: Any, bounds: NumberRange, notes: list[Adjustment], *, integral: bool
) -> Any:
    """``value`` clamped to ``bounds.maximum`` when above it (and, for decimals, rounded to the
    step); anything that makes no sense is returned as is for ``params`` to refuse."""
    if not finite_number(value):
        return value
    if value < bounds.minimum or (integral and value != int(value)):
        return value
    used: int | float = value
    reason = ""
    if value > bounds.maximum:
        used, reason = bounds.maximum, f"the Space's maximum is {format_number(bounds.maximum)}"
    elif not integral and bounds.step > 0 and not bounds.contains(value):
        steps = round((value - bounds.minimum) / bounds.step)
        used = round(bounds.minimum + steps * bounds.step, 6)
        reason = f"the Space takes steps of {format_number(bounds.step)}"
    if used == value:
        return int(value) if integral else value
    used = int(used) if integral else float(used)
    notes.append(Adjustment(name, value, used, reason))
    return used


#: Field names whose values are credentials; left out of every echo.
_SECRET_KEY = re.compile(r"(auth|password|passwd|secret|token|api[_-]?key|apikey|credential)", re.I)


def without_credentials(value: Any) -> Any:
    """``value`` with credential fields removed (at any depth) and user:password taken out of
    URLs, for echoing a request back (SillyTavern sends ``auth: "user:pass"`` in the body)."""
    if isinstance(value, dict):
        return {
            key: without_credentials(item)
            for key, item in value.items()
            if not (isinstance(key, str) and _SECRET_KEY.search(key))
        }
    if isinstance(value, list):
        return [without_credentials(item) for item in value]
    if isinstance(value, str) and "@" in value and "://" in value:
        return _strip_userinfo(value)
    return value


def _strip_userinfo(text: str) -> str:
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return text
    if not parts.netloc or "@" not in parts.netloc:
        return text
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def adjustment_notes(notes: list[Adjustment]) -> list[str]:
    return [str(note) for note in notes]
