"""Request parameters for the Space's ``/infer`` endpoint: one typed object, validated.

The Space declares its inputs (bounds, steps, defaults) in its API schema. ``SpaceSchema``
holds those bounds; ``SpaceSchema.from_api_info`` reads them from ``Client.view_api`` output
and ``SpaceSchema()`` is the fallback documented in docs/space-api.md for when the Space
cannot be asked.
``GenerationRequest.validate`` checks a request against a schema and names the field, the
value and the allowed range of the first thing that is wrong.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from typing import Any

from sd35.errors import InvalidRequestError

#: The model behind the Space, as every face names it (OpenAI's ``model``, A1111's checkpoint,
#: the provider's ``default_model``, the PNG's metadata).
MODEL_ID = "stabilityai-stable-diffusion-3.5-large"
#: Other names taken for it; the seed's provider id is spelled with dashes only (as g4f does).
MODEL_ALIASES = ("sd-3.5", "sd-3.5-large", "stabilityai-stable-diffusion-3-5-large")
#: The official Space (``owner/name``).
DEFAULT_SPACE = "stabilityai/stable-diffusion-3-5-large"

MAX_SEED = 2**31 - 1
#: Prompts longer than this are refused locally: the Space's text encoders stop reading long
#: before (T5 takes 256 tokens), and an unbounded field is an easy way to flood the queue.
MAX_PROMPT_CHARS = 2000

#: The order in which the Space's ``/infer`` takes its inputs.
INPUT_ORDER = (
    "prompt",
    "negative_prompt",
    "seed",
    "randomize_seed",
    "width",
    "height",
    "guidance_scale",
    "num_inference_steps",
)

ASPECT_RATIOS = (
    "1:1",
    "16:9",
    "9:16",
    "4:3",
    "3:4",
    "3:2",
    "2:3",
    "21:9",
    "9:21",
    "4:5",
    "5:4",
    "2:1",
    "1:2",
)
#: How far a preset's size may stray from its ratio.
RATIO_TOLERANCE = 0.03


@dataclass(frozen=True)
class NumberRange:
    """Bounds, step and default of one numeric input, as the Space declares them."""

    minimum: float
    maximum: float
    step: float
    default: float

    def describe(self) -> str:
        low, high, step = (format_number(n) for n in (self.minimum, self.maximum, self.step))
        return f"{low} to {high} in steps of {step}"

    def contains(self, value: float) -> bool:
        if not (self.minimum <= value <= self.maximum):
            return False
        if self.step <= 0:
            return True
        offset = (value - self.minimum) / self.step
        return math.isclose(offset, round(offset), abs_tol=1e-6)


def _shown(value: Any) -> Any:
    """``value`` as an error may carry it: long text and containers cut short."""
    text = repr(value)
    return value if len(text) <= 80 else text[:77] + "..."


def format_number(value: Any) -> str:
    """A number as people write it (``40``, not ``40.0``); anything else as ``str``."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class SpaceSchema:
    """What the Space accepts for each numeric input (defaults: docs/space-api.md)."""

    seed: NumberRange = NumberRange(0, MAX_SEED, 1, 0)
    width: NumberRange = NumberRange(512, 1024, 32, 1024)
    height: NumberRange = NumberRange(512, 1024, 32, 1024)
    guidance_scale: NumberRange = NumberRange(0.0, 7.5, 0.1, 4.5)
    num_inference_steps: NumberRange = NumberRange(1, 50, 1, 40)
    #: True when read from the Space itself, False when it is the offline fallback.
    from_space: bool = False

    @classmethod
    def from_api_info(cls, info: dict[str, Any], api_name: str = "/infer") -> SpaceSchema:
        """Read the bounds from ``Client.view_api(print_info=False)`` output.

        Inputs the Space does not describe keep the documented fallback.
        """
        endpoint = info.get("named_endpoints", {}).get(api_name)
        if endpoint is None:
            raise KeyError(api_name)
        fallback = cls()
        ranges: dict[str, NumberRange] = {}
        for parameter in endpoint.get("parameters", []):
            name = parameter.get("parameter_name")
            if name not in ("seed", "width", "height", "guidance_scale", "num_inference_steps"):
                continue
            ranges[name] = _range_from_parameter(parameter, getattr(fallback, name))
        return replace(fallback, from_space=True, **ranges)

    def numeric_fields(self) -> dict[str, NumberRange]:
        return {
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "guidance_scale": self.guidance_scale,
            "num_inference_steps": self.num_inference_steps,
        }


def _range_from_parameter(parameter: dict[str, Any], fallback: NumberRange) -> NumberRange:
    """Bounds of a Slider parameter; gradio puts them in the JSON schema and the default."""
    schema = parameter.get("type") or {}
    minimum = schema.get("minimum", fallback.minimum)
    maximum = schema.get("maximum", fallback.maximum)
    step = schema.get("multipleOf", schema.get("step", fallback.step))
    default = parameter.get("parameter_default", fallback.default)
    if not isinstance(default, (int, float)) or isinstance(default, bool):
        default = fallback.default
    return NumberRange(float(minimum), float(maximum), float(step), float(default))


@dataclass(frozen=True)
class GenerationRequest:
    """The eight inputs of the Space's ``/infer``, in its order."""

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    randomize_seed: bool = True
    width: int = 1024
    height: int = 1024
    guidance_scale: float = 4.5
    num_inference_steps: int = 40

    def as_inputs(self) -> tuple[Any, ...]:
        """The positional inputs for ``/infer``."""
        return tuple(getattr(self, name) for name in INPUT_ORDER)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Build from a mapping, ignoring keys that are not inputs (e.g. stored extras)."""
        return cls(**{k: data[k] for k in INPUT_ORDER if k in data})

    def validate(self, schema: SpaceSchema | None = None) -> GenerationRequest:
        """Return a normalised copy, or raise ``InvalidRequestError`` naming what is wrong."""
        schema = schema or SpaceSchema()
        prompt = _text("prompt", self.prompt)
        if not prompt.strip():
            raise InvalidRequestError("prompt", self.prompt, "Please enter a prompt.")
        negative = _text("negative_prompt", self.negative_prompt)
        if not isinstance(self.randomize_seed, bool):
            raise InvalidRequestError(
                "randomize_seed", self.randomize_seed, "randomize_seed must be true or false."
            )
        values: dict[str, Any] = {}
        for name, bounds in schema.numeric_fields().items():
            value = getattr(self, name)
            integral = name != "guidance_scale"
            values[name] = _number(name, value, bounds, integral=integral)
        return replace(self, prompt=prompt, negative_prompt=negative, **values)


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequestError(name, value, f"{name} must be text.")
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidRequestError(
            name,
            f"{len(value)} characters",
            f"{name} is {len(value)} characters long; the limit is {MAX_PROMPT_CHARS}.",
        )
    if "\x00" in value:
        raise InvalidRequestError(name, value, f"{name} must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: no Space can read it
        raise InvalidRequestError(
            name,
            f"character {error.start + 1}",
            f"{name} contains an invalid character (a lone UTF-16 surrogate) at position "
            f"{error.start + 1}.",
        ) from None
    return value


def finite_number(value: Any) -> bool:
    """True for a real number a float can hold: not a bool, NaN, infinity or an int past 2**53."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return -(2**53) <= value <= 2**53
    return math.isfinite(value)


def _number(name: str, value: Any, bounds: NumberRange, *, integral: bool) -> int | float:
    allowed = f"allowed: {bounds.describe()}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(name, _shown(value), f"{name} must be a number ({allowed}).")
    if isinstance(value, int) and not -(2**53) <= value <= 2**53:  # beyond any float's grip
        raise InvalidRequestError(name, "a huge number", f"{name} is far out of range ({allowed}).")
    if not math.isfinite(value):
        raise InvalidRequestError(name, value, f"{name} must be a finite number ({allowed}).")
    if integral and not float(value).is_integer():
        raise InvalidRequestError(name, value, f"{name} must be a whole number ({allowed}).")
    if not bounds.contains(value):
        if bounds.minimum <= value <= bounds.maximum:  # in range, so off the step
            below = (
                bounds.minimum + math.floor((value - bounds.minimum) / bounds.step) * bounds.step
            )
            above = min(below + bounds.step, bounds.maximum)
            nearest = f"{format_number(below)} or {format_number(above)}"
            raise InvalidRequestError(
                name,
                value,
                f"{name} = {format_number(value)} is off-step: it must be a multiple of "
                f"{format_number(bounds.step)} from {format_number(bounds.minimum)} "
                f"({allowed}; nearest: {nearest}).",
            )
        raise InvalidRequestError(
            name, value, f"{name} = {format_number(value)} is out of range ({allowed})."
        )
    return int(value) if integral else round(float(value), 6)


def count_value(name: str, value: Any, maximum: int) -> int:
    """``value`` as a whole count from 1 to ``maximum``; ``InvalidRequestError`` otherwise."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 1 <= value <= maximum:
        raise InvalidRequestError(
            name, _shown(value), f"{name} must be a whole number from 1 to {maximum}."
        )
    return int(value)


def request_from_values(values: Mapping[str, Any], schema: SpaceSchema) -> GenerationRequest:
    """A validated request from a form's raw values, named as ``GenerationRequest``'s fields
    (sliders hand over floats such as ``512.0``; a missing value takes the usual default)."""
    request = GenerationRequest(
        prompt=_or_default(values.get("prompt"), ""),
        negative_prompt=_or_default(values.get("negative_prompt"), ""),
        seed=_whole(values.get("seed"), 0),
        randomize_seed=_or_default(values.get("randomize_seed"), False),
        width=_whole(values.get("width"), 1024),
        height=_whole(values.get("height"), 1024),
        guidance_scale=values.get("guidance_scale"),
        num_inference_steps=_whole(values.get("num_inference_steps"), 40),
    )
    return request.validate(schema)  # names any value of the wrong type (NaN, text, a list)


def _or_default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _whole(value: Any, default: int) -> Any:
    if value is None:
        return default
    return int(value) if isinstance(value, float) and value.is_integer() else value


def batch_requests(request: GenerationRequest, count: int) -> list[GenerationRequest]:
    """``count`` requests for a batch: a random seed each, or consecutive seeds from a fixed one
    (wrapping past ``MAX_SEED``)."""
    if request.randomize_seed:
        return [request] * count
    return [replace(request, seed=(request.seed + i) % (MAX_SEED + 1)) for i in range(count)]


# --- aspect ratios -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def parse_ratio(ratio: str) -> Fraction:
    """``"16:9"`` → ``Fraction(16, 9)``; raises ``InvalidRequestError`` on anything else."""
    try:
        left, right = (int(part) for part in str(ratio).strip().split(":"))
        if left <= 0 or right <= 0:
            raise ValueError
    except ValueError:
        raise InvalidRequestError(
            "aspect_ratio", ratio, f"aspect_ratio must look like 16:9, not {ratio!r}."
        ) from None
    return Fraction(left, right)


#: Other tools (ComfyUI) round sizes up to this grid: a preset on it can be remade anywhere.
EXACT_GRID = 64


@functools.lru_cache(maxsize=256)  # exact Fraction arithmetic over the grid: ~2 ms a call
def _best_size(ratio: Fraction, schema: SpaceSchema) -> Size | None:
    """The largest size within bounds with exactly ``ratio`` on the 64 grid (docs/metadata.md);
    failing that, the largest on-grid size whose ratio is within tolerance; or None."""
    exact = [
        Size(width, width * ratio.denominator // ratio.numerator)
        for width in range(EXACT_GRID, int(schema.width.maximum) + 1, EXACT_GRID)
        if width * ratio.denominator % (ratio.numerator * EXACT_GRID) == 0
    ]
    fitting = [
        s for s in exact if schema.width.contains(s.width) and schema.height.contains(s.height)
    ]
    if fitting:
        return fitting[-1]  # the widest, hence the largest
    best: Size | None = None
    for width in _grid(schema.width):
        for height in _grid(schema.height):
            if abs(Fraction(width, height) / ratio - 1) > RATIO_TOLERANCE:
                continue
            candidate = Size(width, height)
            if best is None or _better(candidate, best, ratio):
                best = candidate
    return best


def _better(candidate: Size, best: Size, ratio: Fraction) -> bool:
    area, best_area = candidate.width * candidate.height, best.width * best.height
    if area != best_area:
        return area > best_area
    error = abs(Fraction(candidate.width, candidate.height) - ratio)
    return error < abs(Fraction(best.width, best.height) - ratio)


def _grid(bounds: NumberRange) -> range:
    step = max(1, int(bounds.step))
    return range(int(bounds.minimum), int(bounds.maximum) + 1, step)


def size_for_aspect_ratio(ratio: str, schema: SpaceSchema | None = None) -> Size:
    """The largest size for ``ratio`` that the Space accepts.

    Raises ``InvalidRequestError`` naming the nearest ratio that fits when none does.
    """
    schema = schema or SpaceSchema()
    wanted = parse_ratio(ratio)
    size = _best_size(wanted, schema)
    if size is not None:
        return size
    nearest = min(
        (r for r in ASPECT_RATIOS if _best_size(parse_ratio(r), schema) is not None),
        key=lambda r: abs(math.log(parse_ratio(r) / wanted)),
        default="1:1",
    )
    widest = Fraction(int(schema.width.maximum), int(schema.height.minimum))
    raise InvalidRequestError(
        "aspect_ratio",
        ratio,
        f"aspect ratio {ratio} does not fit the Space's sizes "
        f"(width {schema.width.describe()}, height {schema.height.describe()}; "
        f"at most {float(widest):g}:1); the nearest ratio that fits is {nearest}.",
    )


def fit_size(width: int, height: int, schema: SpaceSchema | None = None) -> Size:
    """The accepted size nearest to ``width`` x ``height`` with its aspect ratio (within
    ``RATIO_TOLERANCE`` when any accepted size has it, else the closest ratio): on the Space's
    step and within its bounds. An accepted size is returned unchanged."""
    return _fit_size(int(width), int(height), schema or SpaceSchema())


@functools.lru_cache(maxsize=256)
def _fit_size(width: int, height: int, schema: SpaceSchema) -> Size:
    wanted = math.log(width / height)
    sizes = [Size(w, h) for w in _grid(schema.width) for h in _grid(schema.height)]

    def ratio_error(size: Size) -> float:
        return abs(math.log(size.width / size.height) - wanted)

    def distance(size: Size) -> float:
        return abs(math.log(size.width / width)) + abs(math.log(size.height / height))

    close = [size for size in sizes if ratio_error(size) <= math.log1p(RATIO_TOLERANCE)]
    if close:
        return min(close, key=lambda size: (distance(size), ratio_error(size)))
    return min(sizes, key=lambda size: (ratio_error(size), distance(size)))


def aspect_ratio_presets(schema: SpaceSchema | None = None) -> dict[str, Size]:
    """Every preset of ``ASPECT_RATIOS`` that fits the schema, with its size."""
    schema = schema or SpaceSchema()
    presets: dict[str, Size] = {}
    for ratio in ASPECT_RATIOS:
        size = _best_size(parse_ratio(ratio), schema)
        if size is not None:
            presets[ratio] = size
    return presets


def build_request(
    prompt: str,
    *,
    negative_prompt: str | None = None,
    aspect_ratio: str | None = "1:1",
    width: int | None = None,
    height: int | None = None,
    guidance_scale: float | None = None,
    num_inference_steps: int | None = None,
    seed: int | None = None,
    randomize_seed: bool = True,
    schema: SpaceSchema | None = None,
) -> GenerationRequest:
    """A validated request from loose input: explicit width/height win over the ratio preset,
    and anything left out takes the Space's own default."""
    schema = schema or SpaceSchema()
    if width is None or height is None:
        preset = size_for_aspect_ratio(aspect_ratio or "1:1", schema)
        width = preset.width if width is None else width
        height = preset.height if height is None else height
    request = GenerationRequest(
        prompt=prompt,
        negative_prompt=negative_prompt or "",
        seed=int(schema.seed.default) if seed is None else seed,
        randomize_seed=randomize_seed,
        width=width,
        height=height,
        guidance_scale=(
            schema.guidance_scale.default if guidance_scale is None else guidance_scale
        ),
        num_inference_steps=(
            int(schema.num_inference_steps.default)
            if num_inference_steps is None
            else num_inference_steps
        ),
    )
    return request.validate(schema)
