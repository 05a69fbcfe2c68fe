"""Request bodies, as both HTTP dialects read them: a size-capped JSON object, whole-number
counts, optional text, the "-1 means random" seed, and the model names this server answers to.
Values are only shaped here; ``sd35.params`` validates them against the Space's schema."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from sd35.api import compat
from sd35.api.errors import ApiError, invalid
from sd35.params import MODEL_ALIASES, MODEL_ID, GenerationRequest, SpaceSchema, build_request

#: The model names this server answers to: ours and its aliases (``sd35.params``).
MODELS = (MODEL_ID, *MODEL_ALIASES)
#: A request body larger than this is refused (a prompt is at most a few KiB).
MAX_BODY_BYTES = 1024 * 1024


def _too_large() -> ApiError:
    return invalid(f"The request body is larger than {MAX_BODY_BYTES} bytes.")


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (empty body: ``{}``); 400 when too large or not an object."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large()
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):  # also numbers of more than 4,300 digits
        raise invalid("The request body must be JSON.", code="invalid_json") from None
    except RecursionError:  # nested thousands deep: no request of ours looks like that
        raise invalid("The request body is nested too deeply.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.", code="invalid_json")
    return data


def count_field(data: dict[str, Any], name: str, default: int, maximum: int) -> int:
    """``data[name]`` as a whole number from 1 to ``maximum`` (absent or null: ``default``)."""
    value = data.get(name, default)
    if value is None:
        return default
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:  # also NaN and infinity
        raise invalid(f"{name} must be a whole number from 1 to {maximum}.", name)
    if not 1 <= value <= maximum:
        shown = value if abs(value) < 10**9 else "a huge number"
        raise invalid(f"{name} = {shown} is out of range (allowed: 1 to {maximum}).", name)
    return int(value)


def optional_text(data: dict[str, Any], name: str) -> Any:
    """``data[name]`` when it is text or absent; 400 otherwise."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{name} must be text.", name)
    return value


def seed_or_random(value: Any) -> int | None:
    """None for "random" (absent, null or -1), else the value (validated by params)."""
    if value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value == -1
    ):
        return None
    return value


def resolve_model(model: Any) -> str:
    """Our model id for ``model`` (absent: the default); 400 naming the models otherwise."""
    if model is None or model == "":
        return MODEL_ID
    if isinstance(model, str) and model.strip().lower() in MODELS:
        return MODEL_ID
    if compat.model_family(model) is not None:  # dall-e-3, gpt-image-1, configured aliases
        return MODEL_ID
    raise invalid(
        f"Unknown model {model!r}. This server offers {MODEL_ID} (aliases: "
        f"{', '.join(MODEL_ALIASES)}, and OpenAI's dall-e-2, dall-e-3, gpt-image-1).",
        "model",
        code="model_not_found",
    )


def lenient_request(
    prompt: str,
    data: dict[str, Any],
    schema: SpaceSchema,
    notes: list[compat.Adjustment],
    *,
    size: tuple[int | None, int | None],
    guidance: str,
    steps: str,
    aspect_ratio: str = "1:1",
) -> GenerationRequest:
    """The request a compatibility body asks for: its ``size`` (already fitted), its
    guidance and steps under the dialect's names clamped onto the Space's (``compat``), its
    negative prompt and its seed (-1 or none: random); validated by ``sd35.params``."""
    guidance_scale, num_inference_steps = compat.clamp_settings(
        data, schema, notes, guidance=guidance, steps=steps
    )
    seed = seed_or_random(data.get("seed"))
    return build_request(
        prompt,
        negative_prompt=optional_text(data, "negative_prompt"),
        aspect_ratio=aspect_ratio,
        width=size[0],
        height=size[1],
        guidance_scale=guidance_scale,
        num_inference_steps=num_inference_steps,
        seed=seed,
        randomize_seed=seed is None,
        schema=schema,
    )
