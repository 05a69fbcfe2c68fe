"""Request parameters: validation against the Space's bounds, and aspect-ratio presets."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sd35.errors import InvalidRequestError
from sd35.params import (
    ASPECT_RATIOS,
    MAX_PROMPT_CHARS,
    GenerationRequest,
    NumberRange,
    SpaceSchema,
    aspect_ratio_presets,
    build_request,
    size_for_aspect_ratio,
)

SCHEMA = SpaceSchema()

# Worked out by hand from 512…1024 step 32: the largest size with exactly the ratio on the 64
# grid, else the largest on-grid size within 3% of the ratio.
EXPECTED = {
    "1:1": (1024, 1024),
    "16:9": (1024, 576),
    "9:16": (576, 1024),
    "4:3": (1024, 768),
    "3:4": (768, 1024),
    # Exactly the ratio on the 64 grid where that fits (ComfyUI rounds sizes up to 64):
    "3:2": (960, 640),
    "2:3": (640, 960),
    "4:5": (768, 960),
    "5:4": (960, 768),
    "2:1": (1024, 512),
    "1:2": (512, 1024),
}


@pytest.mark.parametrize(("ratio", "size"), EXPECTED.items())
def test_presets_are_the_largest_fitting_size(ratio: str, size: tuple[int, int]) -> None:
    preset = size_for_aspect_ratio(ratio)
    assert (preset.width, preset.height) == size
    wanted = Fraction(*map(int, ratio.split(":")))
    assert abs(Fraction(preset.width, preset.height) / wanted - 1) <= Fraction(3, 100)
    for value, bounds in ((preset.width, SCHEMA.width), (preset.height, SCHEMA.height)):
        assert bounds.contains(value)
        assert value % 32 == 0


@pytest.mark.parametrize(("ratio", "nearest"), [("21:9", "2:1"), ("9:21", "1:2"), ("3:1", "2:1")])
def test_ratio_that_cannot_fit_is_refused_naming_the_nearest(ratio: str, nearest: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        size_for_aspect_ratio(ratio)
    assert caught.value.field == "aspect_ratio"
    assert f"nearest ratio that fits is {nearest}" in caught.value.message


def test_every_listed_ratio_either_fits_or_is_refused() -> None:
    presets = aspect_ratio_presets()
    assert set(presets) == set(EXPECTED)
    assert set(ASPECT_RATIOS) - set(presets) == {"21:9", "9:21"}


def test_presets_follow_the_bounds_the_space_declares() -> None:
    wide = SpaceSchema(
        width=NumberRange(256, 1536, 64, 1024), height=NumberRange(256, 1536, 64, 1024)
    )
    size = size_for_aspect_ratio("21:9", wide)
    assert (size.width, size.height) == (1344, 576)  # exactly 7:3 on the 64 grid
    narrow = SpaceSchema(
        width=NumberRange(256, 1536, 32, 1024), height=NumberRange(608, 1536, 32, 1024)
    )
    size = size_for_aspect_ratio("21:9", narrow)  # no exact 64-grid size: the nearest fit
    assert (size.width, size.height) == (1536, 672)  # 2.29 vs 2.33: 2.0% off, the largest
    assert size_for_aspect_ratio("1:1", wide).width == 1536


@pytest.mark.parametrize("ratio", ["", "16x9", "0:1", "a:b", "1:-2"])
def test_malformed_ratio_is_a_clear_error(ratio: str) -> None:
    with pytest.raises(InvalidRequestError, match="aspect_ratio must look like 16:9"):
        size_for_aspect_ratio(ratio)


def test_explicit_size_wins_over_the_preset() -> None:
    request = build_request("cat", aspect_ratio="16:9", width=640, height=960)
    assert (request.width, request.height) == (640, 960)
    half = build_request("cat", aspect_ratio="16:9", width=768)
    assert (half.width, half.height) == (768, 576)


def test_defaults_are_the_spaces_own() -> None:
    request = build_request("cat")
    assert request.num_inference_steps == 40
    assert request.guidance_scale == 4.5
    assert request.negative_prompt == ""  # never None
    assert (request.width, request.height) == (1024, 1024)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("width", 256, "width = 256 is out of range (allowed: 512 to 1024 in steps of 32)"),
        ("width", 1000, "width = 1000 is off-step"),
        ("width", 600, "nearest: 576 or 608"),
        ("height", 520, "height = 520 is off-step: it must be a multiple of 32 from 512"),
        ("height", 2048, "height = 2048 is out of range"),
        ("guidance_scale", 7.6, "guidance_scale = 7.6 is out of range (allowed: 0 to 7.5"),
        ("num_inference_steps", 0, "num_inference_steps = 0 is out of range (allowed: 1 to 50"),
        ("num_inference_steps", 2.5, "num_inference_steps must be a whole number"),
        ("seed", -1, "seed = -1 is out of range (allowed: 0 to 2147483647"),
        ("seed", 2**31, "seed = 2147483648 is out of range"),
        ("guidance_scale", float("nan"), "guidance_scale must be a finite number"),
        ("width", "wide", "width must be a number"),
        ("randomize_seed", "yes", "randomize_seed must be true or false"),
    ],
)
def test_invalid_values_name_field_value_and_range(field: str, value: object, expected: str):
    request = GenerationRequest(prompt="cat", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as caught:
        request.validate(SCHEMA)
    assert caught.value.field == field
    assert expected in caught.value.message


@pytest.mark.parametrize("prompt", ["", "   \n "])
def test_empty_prompt_is_refused(prompt: str) -> None:
    with pytest.raises(InvalidRequestError, match="enter a prompt"):
        GenerationRequest(prompt=prompt).validate()


def test_overlong_prompt_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match=f"the limit is {MAX_PROMPT_CHARS}"):
        GenerationRequest(prompt="x" * (MAX_PROMPT_CHARS + 1)).validate()


def test_inputs_are_in_the_spaces_order() -> None:
    request = GenerationRequest("p", "n", 7, False, 512, 768, 3.5, 20)
    assert request.as_inputs() == ("p", "n", 7, False, 512, 768, 3.5, 20)


def test_schema_from_api_info_reads_slider_bounds() -> None:
    info = {
        "named_endpoints": {
            "/infer": {
                "parameters": [
                    {"parameter_name": "prompt", "type": {"type": "string"}},
                    {
                        "parameter_name": "width",
                        "parameter_default": 768,
                        "type": {"type": "number", "minimum": 256, "maximum": 1536},
                    },
                ]
            }
        }
    }
    schema = SpaceSchema.from_api_info(info)
    assert schema.from_space
    assert (schema.width.minimum, schema.width.maximum, schema.width.default) == (256, 1536, 768)
    assert schema.height == SpaceSchema().height  # undeclared: the documented fallback


numbers = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.text(max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(
    prompt=st.one_of(st.text(max_size=3000), st.none(), st.integers()),
    negative=st.one_of(st.text(max_size=50), st.none()),
    width=numbers,
    height=numbers,
    guidance=numbers,
    steps=numbers,
    seed=numbers,
    ratio=st.one_of(st.sampled_from(ASPECT_RATIOS), st.text(max_size=8)),
)
def test_random_input_gives_a_valid_request_or_a_clear_error(
    prompt, negative, width, height, guidance, steps, seed, ratio
) -> None:
    try:
        request = build_request(
            prompt,
            negative_prompt=negative,
            aspect_ratio=ratio,
            width=width,
            height=height,
            guidance_scale=guidance,
            num_inference_steps=steps,
            seed=seed,
        )
    except InvalidRequestError as error:
        assert error.message and error.field
        return
    for name, bounds in SCHEMA.numeric_fields().items():
        value = getattr(request, name)
        assert math.isfinite(value) and bounds.contains(value)
    assert request.prompt.strip()
