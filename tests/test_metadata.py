"""PNG metadata: our JSON round-trips exactly; the A1111 text reads right in every reader."""

from __future__ import annotations

import io
import json
import re
import struct
import tempfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from sd35 import image_files
from sd35 import metadata as md
from sd35.image_files import write_png
from sd35.metadata import (
    ImageMetadata,
    NotAnImageError,
    parse_a1111,
    read_metadata,
    to_a1111,
)
from sd35.params import GenerationRequest
from sd35.png_writer import png_with_metadata
from tests.a1111_reference import a1111_parse

# --- reference readers, written from the readers' own code ----------------------------------------

#: AUTOMATIC1111's ``parse_generation_parameters`` (modules/infotext_utils.py), minus the
#: defaults it fills in afterwards.
reference_a1111 = a1111_parse


def comfyui_import(text: str) -> dict[str, Any] | None:
    """The part of ComfyUI frontend's ``importA1111`` that splits the text."""
    p = text.rfind("\nSteps:")
    if p < 0:
        return None
    p2 = text.rfind("\nNegative prompt:", 0, p)
    if p2 < 0:
        return None
    opts_line = text[p:].split("\n")[1]
    return {
        "positive": text[:p2].strip(),
        "negative": text[p2 + 18 : p].strip(),
        "steps_line": opts_line,
    }


def a1111_view(text: str) -> str:
    """What A1111's parser makes of a prompt at best: each line stripped, leading blank lines
    dropped (see the module docstring of sd35.metadata)."""
    out = ""
    for line in text.split("\n"):
        line = line.strip()
        out += ("" if out == "" else "\n") + line
    return out


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def meta_for(prompt: str, negative: str = "", **kwargs: Any) -> ImageMetadata:
    return ImageMetadata(
        prompt=prompt,
        negative_prompt=negative,
        seed=kwargs.pop("seed", 1234567890),
        randomize_seed=kwargs.pop("randomize_seed", True),
        width=kwargs.pop("width", 1024),
        height=kwargs.pop("height", 768),
        guidance_scale=kwargs.pop("guidance_scale", 4.5),
        num_inference_steps=kwargs.pop("num_inference_steps", 28),
        created_at="2026-11-26T07:15:02+01:00",
        elapsed=12.25,
        **kwargs,
    )


def small_image() -> Image.Image:
    return Image.new("RGB", (8, 8), (10, 20, 30))


TRICKY_PROMPTS = [
    "a cat",
    "a cat, sitting on a mat, (masterpiece:1.2), [blurry|sharp]",
    "line one\nline two\n\nline four",
    "кот в сапогах, 猫が好き, 🐱🐈‍⬛ emoji",
    'she said "hello", then \\ left',
    "Negative prompt: this is part of the POSITIVE prompt",
    "first line\nNegative prompt: still positive\nthird",
    "first line\n   Negative prompt: indented, still positive",
    "\u200bNegative prompt: with a zero width space already",
    "text with Negative prompt: in the middle",
    "a prompt\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512",
    "Steps: 20, Seed: 1, Size: 5x5",
    "key: value, other: thing, third: one",
    "café crème, naïve façade",  # Latin-1 but not ASCII
    "tab\tinside, carriage\r\nreturn",
]


# --- ImageMetadata --------------------------------------------------------------------------------


def test_from_request_records_the_seed_used_and_to_request_reproduces_it() -> None:
    request = GenerationRequest(
        prompt="a lighthouse",
        negative_prompt="fog",
        seed=0,
        randomize_seed=True,
        width=832,
        height=1024,
        guidance_scale=3.5,
        num_inference_steps=30,
    )
    meta = ImageMetadata.from_request(request, seed=987654, space="https://example.test")
    assert meta.seed == 987654
    assert meta.randomize_seed is True
    assert meta.space == "https://example.test"
    assert meta.model == "stabilityai-stable-diffusion-3.5-large"
    assert meta.created_at  # ISO 8601, with offset
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", meta.created_at)
    again = meta.to_request()
    assert again == replace(request, seed=987654, randomize_seed=False)
    assert again.validate() == again


def test_json_round_trip_is_exact_and_ascii() -> None:
    meta = meta_for("кот 猫 🐱", "нет", extra={"user": "alice", "nested": {"a": [1, 2.5, None]}})
    text = meta.to_json()
    assert text.isascii()
    assert ImageMetadata.from_json(text) == meta


@pytest.mark.parametrize(
    "data",
    [
        {"prompt": 5},
        {"negative_prompt": "x"},
        {"prompt": "x", "seed": "12"},
        {"prompt": "x", "seed": True},
        {"prompt": "x", "randomize_seed": 1},
        {"prompt": "x", "extra": []},
        [],
    ],
)
def test_from_dict_rejects_wrong_types(data: Any) -> None:
    with pytest.raises(ValueError):
        ImageMetadata.from_dict(data)


# --- A1111 text -----------------------------------------------------------------------------------


def test_a1111_text_layout() -> None:
    text = to_a1111(meta_for("a red fox", "blurry, lowres"))
    assert text == (
        "a red fox\n"
        "Negative prompt: blurry, lowres\n"
        'Steps: 28, Raw prompt: "a red fox", Raw negative prompt: "blurry, lowres", '
        "CFG scale: 4.5, Seed: 1234567890, Size: 1024x768, "
        "Model: stabilityai-stable-diffusion-3.5-large, "
        "Space: stabilityai/stable-diffusion-3-5-large"
    )


def test_empty_negative_prompt_still_writes_the_line_for_comfyui() -> None:
    text = to_a1111(meta_for("a red fox", ""))
    assert "\nNegative prompt: \n" in text  # with the space SwarmUI looks for
    assert "\nSteps:" in text
    imported = comfyui_import(text)
    assert imported is not None
    assert imported["positive"] == "a red fox"
    assert imported["negative"] == ""
    assert imported["steps_line"].startswith("Steps: 28, ")
    assert reference_a1111(text)["Negative prompt"] == ""


def test_values_with_commas_or_colons_are_json_quoted() -> None:
    meta = meta_for("x", space="http://127.0.0.1:7870/", model='odd, "model"')
    text = to_a1111(meta)
    last = text.split("\n")[-1]
    assert 'Space: "http://127.0.0.1:7870/"' in last
    assert 'Model: "odd, \\"model\\""' in last
    ref = reference_a1111(text)
    assert ref["Space"] == "http://127.0.0.1:7870/"
    assert ref["Model"] == 'odd, "model"'
    parsed = parse_a1111(text)
    assert parsed["Space"] == "http://127.0.0.1:7870/"
    assert parsed["Model"] == 'odd, "model"'


def test_non_ascii_values_stay_readable_when_quoted() -> None:
    text = to_a1111(meta_for("x", model="модель: один"))
    assert '"модель: один"' in text
    assert parse_a1111(text)["Model"] == "модель: один"


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
@pytest.mark.parametrize("negative", ["", "ugly, blurry", "line\nNegative prompt: again"])
def test_a1111_readers_get_the_right_split(prompt: str, negative: str) -> None:
    meta = meta_for(prompt, negative, guidance_scale=3.7)
    text = to_a1111(meta)

    # Our parser: exactly what A1111 could possibly keep, without our escape characters.
    ours = parse_a1111(text)
    assert ours["prompt"] == a1111_view(prompt)
    assert ours["negative_prompt"] == a1111_view(negative)
    assert ours["num_inference_steps"] == 28
    assert ours["guidance_scale"] == 3.7
    assert ours["seed"] == 1234567890
    assert (ours["width"], ours["height"]) == (1024, 768)

    # AUTOMATIC1111's own parser: the same split; at most an invisible U+200B where a line
    # would otherwise have started the negative prompt.
    ref = reference_a1111(text)
    assert ref["Prompt"].replace("\u200b", "") == a1111_view(prompt).replace("\u200b", "")
    assert ref["Negative prompt"].replace("\u200b", "") == a1111_view(negative).replace(
        "\u200b", ""
    )
    assert (ref["Steps"], ref["CFG scale"], ref["Seed"]) == ("28", "3.7", "1234567890")
    assert (ref["Size-1"], ref["Size-2"]) == ("1024", "768")

    # ComfyUI's importer finds our Steps line and our Negative prompt line.
    imported = comfyui_import(text)
    assert imported is not None
    assert imported["steps_line"].startswith("Steps: 28, ")  # the rest: test_reader_compat.py


def test_a_prompt_line_starting_with_negative_prompt_is_escaped_invisibly() -> None:
    meta = meta_for("good\nNegative prompt: still good", "bad")
    text = to_a1111(meta)
    assert "\n\u200bNegative prompt: still good\n" in text
    ref = reference_a1111(text)
    assert ref["Prompt"] == "good\n\u200bNegative prompt: still good"
    assert ref["Negative prompt"] == "bad"
    assert parse_a1111(text)["prompt"] == "good\nNegative prompt: still good"


def test_what_a1111_cannot_keep_is_kept_by_our_json_chunk(tmp_path: Path) -> None:
    meta = meta_for("  leading spaces\n\n", "\n  negative with leading blank line  ")
    path = write_png(small_image(), tmp_path / "a.png", meta)
    parsed = parse_a1111(to_a1111(meta))
    assert parsed["prompt"] == "leading spaces\n\n"  # leading spaces lost
    assert parsed["negative_prompt"] == "negative with leading blank line"
    assert read_metadata(path) == meta


SAMPLES: list[tuple[str, dict[str, Any]]] = [
    (
        # LoRA tags, Schedule type, quoted Lora hashes (a value with commas and colons).
        "masterpiece, best quality, 1girl, solo, <lora:add_detail:0.6>, <lora:mecha_v2:0.8>, "
        "looking at viewer, (city lights:1.2)\n"
        "Negative prompt: (worst quality, low quality:1.4), easynegative, bad-hands-5\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3405691582, "
        "Size: 512x768, Model hash: 7f96a1a9ca, Model: anythingV5_PrtRE, "
        'Lora hashes: "add_detail: 7c6bad76eb54, mecha_v2: a1b2c3d4e5f6", Version: v1.10.1',
        {
            "prompt": "masterpiece, best quality, 1girl, solo, <lora:add_detail:0.6>, "
            "<lora:mecha_v2:0.8>, looking at viewer, (city lights:1.2)",
            "negative_prompt": "(worst quality, low quality:1.4), easynegative, bad-hands-5",
            "num_inference_steps": 28,
            "Sampler": "DPM++ 2M",
            "Schedule type": "Karras",
            "guidance_scale": 7.0,
            "seed": 3405691582,
            "width": 512,
            "height": 768,
            "Model hash": "7f96a1a9ca",
            "Model": "anythingV5_PrtRE",
            "Lora hashes": "add_detail: 7c6bad76eb54, mecha_v2: a1b2c3d4e5f6",
            "Version": "v1.10.1",
        },
    ),
    (
        # Hires fix.
        "a photo of an astronaut riding a horse on mars, highly detailed\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 30, Sampler: Euler a, CFG scale: 6.5, Seed: 1234567890, Size: 768x512, "
        "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.45, "
        "Hires upscale: 2, Hires steps: 15, Hires upscaler: R-ESRGAN 4x+, Version: v1.9.4",
        {
            "prompt": "a photo of an astronaut riding a horse on mars, highly detailed",
            "negative_prompt": "blurry, lowres",
            "num_inference_steps": 30,
            "Sampler": "Euler a",
            "guidance_scale": 6.5,
            "seed": 1234567890,
            "width": 768,
            "height": 512,
            "Model hash": "31e35c80fc",
            "Model": "sd_xl_base_1.0",
            "Denoising strength": "0.45",
            "Hires upscale": "2",
            "Hires steps": "15",
            "Hires upscaler": "R-ESRGAN 4x+",
            "Version": "v1.9.4",
        },
    ),
    (
        # Multi-line prompt and negative prompt, ADetailer prompt quoted because of its comma.
        "portrait of an old fisherman\nweathered face, dramatic lighting\n"
        "Negative prompt: cartoon, painting\n3d render,\n(deformed iris:1.3)\n"
        "Steps: 20, Sampler: DPM++ SDE Karras, CFG scale: 5.5, Seed: 42, Size: 832x1216, "
        "Model: juggernautXL_v9, ADetailer model: face_yolov8n.pt, "
        'ADetailer prompt: "detailed eyes, sharp focus", TI hashes: "easynegative: c74b4e810b03", '
        "Clip skip: 2",
        {
            "prompt": "portrait of an old fisherman\nweathered face, dramatic lighting",
            "negative_prompt": "cartoon, painting\n3d render,\n(deformed iris:1.3)",
            "num_inference_steps": 20,
            "Sampler": "DPM++ SDE Karras",
            "guidance_scale": 5.5,
            "seed": 42,
            "width": 832,
            "height": 1216,
            "Model": "juggernautXL_v9",
            "ADetailer model": "face_yolov8n.pt",
            "ADetailer prompt": "detailed eyes, sharp focus",
            "TI hashes": "easynegative: c74b4e810b03",
            "Clip skip": "2",
        },
    ),
    (
        # Fooocus in A1111 mode: 64-bit seed, quoted tuple and list values.
        "a cat sitting on a windowsill, warm light\n"
        "Negative prompt: unrealistic, saturated, high contrast\n"
        "Steps: 30, Sampler: dpmpp_2m_sde_gpu, Scheduler: karras, CFG scale: 4.0, "
        "Seed: 8419383828470934563, Size: 896x1152, Sharpness: 2.0, "
        'ADM Guidance: "(1.5, 0.8, 0.3)", '
        "Styles: \"['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']\", Performance: Speed, "
        "Model: juggernautXL_v8Rundiffusion, Version: Fooocus v2.5.5",
        {
            "prompt": "a cat sitting on a windowsill, warm light",
            "negative_prompt": "unrealistic, saturated, high contrast",
            "num_inference_steps": 30,
            "Sampler": "dpmpp_2m_sde_gpu",
            "Scheduler": "karras",
            "guidance_scale": 4.0,
            "seed": 8419383828470934563,
            "width": 896,
            "height": 1152,
            "Sharpness": "2.0",
            "ADM Guidance": "(1.5, 0.8, 0.3)",
            "Styles": "['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']",
            "Performance": "Speed",
            "Model": "juggernautXL_v8Rundiffusion",
            "Version": "Fooocus v2.5.5",
        },
    ),
    (
        # AUTOMATIC1111 leaves the Negative prompt line out when it is empty.
        "a red apple on a table\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
        "Model: v1-5-pruned-emaonly",
        {
            "prompt": "a red apple on a table",
            "negative_prompt": "",
            "num_inference_steps": 20,
            "Sampler": "Euler a",
            "guidance_scale": 7.0,
            "seed": 1,
            "width": 512,
            "height": 512,
            "Model": "v1-5-pruned-emaonly",
        },
    ),
]


@pytest.mark.parametrize(("text", "expected"), SAMPLES)
def test_real_a1111_texts_are_parsed(text: str, expected: dict[str, Any]) -> None:
    assert parse_a1111(text) == expected


def test_text_without_parameter_line_is_all_prompt() -> None:
    assert parse_a1111("just a prompt, with: one colon") == {
        "prompt": "just a prompt, with: one colon",
        "negative_prompt": "",
    }
    assert md.metadata_from_a1111("just a prompt") is None


def test_unconvertible_values_stay_under_their_own_name() -> None:
    parsed = parse_a1111("p\nSteps: many, CFG scale: high, Seed: -, Size: big")
    assert parsed["Steps"] == "many"
    assert parsed["CFG scale"] == "high"
    assert parsed["Seed"] == "-"
    assert parsed["Size"] == "big"


# --- PNG chunks -----------------------------------------------------------------------------------


def test_png_has_all_three_chunks_and_pillow_reads_them(tmp_path: Path) -> None:
    meta = meta_for("кот 猫 🐱", "café")
    path = write_png(small_image(), tmp_path / "a.png", meta)
    with Image.open(path) as image:
        info = image.info
        assert info["fooocus_scheme"] == "a1111"
        assert info["parameters"] == to_a1111(meta)
        assert ImageMetadata.from_json(info["sd35"]) == meta
        image.load()  # the image data is complete
    chunks = {
        kind + b":" + data.split(b"\0", 1)[0]
        for kind, data in png_chunks(path.read_bytes())
        if kind in (b"tEXt", b"iTXt", b"zTXt")
    }
    # Non-ASCII text in (uncompressed) iTXt; ASCII-only chunks in plain tEXt.
    assert chunks == {b"iTXt:parameters", b"tEXt:fooocus_scheme", b"tEXt:sd35"}
    kinds = [kind for kind, _ in png_chunks(path.read_bytes())]
    assert kinds.index(b"iTXt") < kinds.index(b"IDAT")  # before the data: cheap to read


def test_latin1_text_goes_to_itxt_not_latin1_text(tmp_path: Path) -> None:
    # Pillow's add_text would store "é" as Latin-1 tEXt, which ComfyUI decodes as UTF-8.
    path = write_png(small_image(), tmp_path / "a.png", meta_for("café"))
    itxt = [d for k, d in png_chunks(path.read_bytes()) if k == b"iTXt"]
    assert len(itxt) == 1
    assert itxt[0].startswith(b"parameters\0\0\0\0\0")  # uncompressed, no language
    assert "café".encode() in itxt[0]


def test_ascii_prompt_is_plain_text_chunk(tmp_path: Path) -> None:
    path = write_png(small_image(), tmp_path / "a.png", meta_for("a cat"))
    kinds = {k for k, _ in png_chunks(path.read_bytes())}
    assert b"iTXt" not in kinds
    assert b"tEXt" in kinds


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_write_read_round_trip_is_exact(tmp_path: Path, prompt: str) -> None:
    meta = meta_for(prompt, "нет, 不要\nNegative prompt: x", extra={"user": "bob"})
    path = write_png(small_image(), tmp_path / "a.png", meta)
    assert read_metadata(path) == meta
    assert read_metadata(path.read_bytes()) == meta
    with Image.open(path) as image:
        assert read_metadata(image) == meta


def test_lone_surrogates_and_nul_do_not_break_writing(tmp_path: Path) -> None:
    meta = meta_for("broken \ud800 surrogate and \x00 nul")
    path = write_png(small_image(), tmp_path / "a.png", meta)
    assert read_metadata(path) == meta  # JSON escapes keep even these exactly
    with Image.open(path) as image:
        assert image.info["parameters"].startswith("broken \ufffd surrogate and  nul\n")


def test_write_png_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    write_png(small_image(), tmp_path / "a.png", meta_for("x"))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_failed_write_leaves_neither_file_nor_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.png"

    def explode(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        write_png(small_image(), target, meta_for("x"))
    assert list(tmp_path.iterdir()) == []


def test_temp_names_carry_the_writer_pid(tmp_path: Path) -> None:
    name = image_files.temp_path(tmp_path, ".png").name
    assert name.startswith(".tmp-") and name.endswith(".png")
    assert image_files.temp_owner(name) == __import__("os").getpid()
    assert image_files.temp_owner("a.png") is None


# --- reading other people's files and garbage -----------------------------------------------------


def png_with_texts(texts: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    small_image().save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_spliced_chunks_replace_the_files_own_of_the_same_keywords() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "theirs", zip=True)  # zTXt
    info.add_itxt("sd35", '{"prompt": "theirs"}')
    info.add_text("Comment", "kept")
    buffer = io.BytesIO()
    small_image().save(buffer, format="PNG", pnginfo=info)
    meta = meta_for("ours, ünïcode")
    spliced = png_with_metadata(buffer.getvalue(), meta)
    assert spliced is not None
    assert read_metadata(spliced) == meta
    texts = md.read_texts(spliced)
    assert texts["parameters"] == md.to_a1111(meta) and texts["Comment"] == "kept"
    assert b"theirs" not in spliced
    with Image.open(io.BytesIO(spliced)) as ours:
        assert ours.tobytes() == small_image().tobytes()


def test_a_png_that_is_not_whole_and_sound_is_not_spliced() -> None:
    good = png_with_texts({})
    crc_broken = bytearray(good)
    crc_broken[-20] ^= 0xFF  # inside the last IDAT's data
    for bad in (good[:-12], bytes(crc_broken), good[8:], b"GIF89a" + good[6:]):
        assert png_with_metadata(bad, meta_for("x")) is None
    assert png_with_metadata(good, meta_for("x")) is not None


def test_reads_a1111_parameters_when_our_chunk_is_missing() -> None:
    data = png_with_texts({"parameters": SAMPLES[0][0]})
    meta = read_metadata(data)
    assert meta is not None
    assert meta.prompt.startswith("masterpiece, best quality")
    assert meta.negative_prompt.startswith("(worst quality")
    assert (meta.seed, meta.width, meta.height) == (3405691582, 512, 768)
    assert (meta.guidance_scale, meta.num_inference_steps) == (7.0, 28)
    assert meta.model == "anythingV5_PrtRE"
    assert meta.extra["Sampler"] == "DPM++ 2M"
    assert meta.to_request().randomize_seed is False


def test_utf8_written_into_text_chunk_by_other_tools_is_read_as_utf8() -> None:
    text = "кот\nNegative prompt: x\nSteps: 1, CFG scale: 2, Seed: 3, Size: 64x64"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text.encode("utf-8"))  # raw bytes: UTF-8 in tEXt
    buffer = io.BytesIO()
    small_image().save(buffer, format="PNG", pnginfo=info)
    meta = read_metadata(buffer.getvalue())
    assert meta is not None and meta.prompt == "кот"
    buffer.seek(0)
    with Image.open(buffer) as image:
        meta = read_metadata(image)
    assert meta is not None and meta.prompt == "кот"


def test_reads_fooocus_json_scheme() -> None:
    fooocus = {
        "prompt": "a cat",
        "negative_prompt": "dog",
        "steps": 30,
        "guidance_scale": 4,
        "seed": "123",
        "resolution": "(896, 1152)",
        "base_model": "juggernautXL",
    }
    meta = read_metadata(png_with_texts({"parameters": json.dumps(fooocus)}))
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt, meta.seed) == ("a cat", "dog", 123)
    assert (meta.width, meta.height, meta.num_inference_steps) == (896, 1152, 30)


def test_reads_a1111_jpeg_exif_user_comment() -> None:
    text = "кот\nNegative prompt: dog\nSteps: 20, CFG scale: 7, Seed: 5, Size: 8x8, Model: m"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    buffer = io.BytesIO()
    small_image().save(buffer, format="JPEG", exif=exif.tobytes())
    meta = read_metadata(buffer.getvalue())
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt, meta.seed) == ("кот", "dog", 5)


@pytest.mark.parametrize(
    "texts",
    [
        {},
        {"sd35": "{not json"},
        {"sd35": '{"prompt": 5}'},
        {"sd35": "[]"},
        {"parameters": ""},
        {"parameters": '{"prompt": 1}'},
        {"parameters": "{broken json"},
        {"parameters": "\x00\x01\x02 binary junk \n\n\n"},
        {"parameters": "p\nSteps: 1e999, CFG scale: nan, Seed: 99999999999999999999999, Size: 1x1"},
    ],
)
def test_garbage_text_never_raises(texts: dict[str, str]) -> None:
    read_metadata(png_with_texts(texts))  # None or something, never an exception


def test_broken_sd35_chunk_falls_back_to_parameters() -> None:
    data = png_with_texts({"sd35": "{broken", "parameters": SAMPLES[1][0]})
    meta = read_metadata(data)
    assert meta is not None and meta.seed == 1234567890


def test_damaged_chunks_and_truncated_files_never_raise(tmp_path: Path) -> None:
    path = write_png(small_image(), tmp_path / "a.png", meta_for("x"))
    data = bytearray(path.read_bytes())
    # Flip a byte inside the sd35 chunk: its CRC no longer matches, so it is ignored.
    pos = data.index(b"sd35\0") + 20
    data[pos] ^= 0xFF
    meta = read_metadata(bytes(data))
    assert meta is not None and meta.prompt == "x"  # from the parameters chunk instead
    for cut in (9, 20, 40, 100, len(data) // 2, len(data) - 5):
        read_metadata(bytes(data[:cut]))
    # A huge declared length must not make us allocate it.
    bogus = bytes(data[:8]) + struct.pack(">I4s", 0xFFFFFFF0, b"tEXt") + b"key\0v"
    assert read_metadata(bogus) is None


def test_compressed_text_chunks_are_read() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("sd35", meta_for("zipped кот").to_json(), zip=True)
    buffer = io.BytesIO()
    small_image().save(buffer, format="PNG", pnginfo=info)
    meta = read_metadata(buffer.getvalue())
    assert meta is not None and meta.prompt == "zipped кот"
    raw = b"parameters\0\0" + zlib.compress(SAMPLES[4][0].encode())
    assert md._decode_text_chunk(b"zTXt", raw) == ("parameters", SAMPLES[4][0])


def test_not_an_image_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotAnImageError, match="not an image"):
        read_metadata(b"hello, I am text")
    path = tmp_path / "notes.png"
    path.write_text("not a png")
    with pytest.raises(NotAnImageError, match=r"notes\.png"):
        read_metadata(path)
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "missing.png")


# --- property-based round trips -------------------------------------------------------------------

prompts = st.text(max_size=300)
metas = st.builds(
    ImageMetadata,
    prompt=prompts,
    negative_prompt=prompts,
    seed=st.integers(min_value=0, max_value=2**63),
    randomize_seed=st.booleans(),
    width=st.integers(min_value=1, max_value=4096),
    height=st.integers(min_value=1, max_value=4096),
    guidance_scale=st.floats(allow_nan=False, allow_infinity=False),
    num_inference_steps=st.integers(min_value=1, max_value=1000),
    model=st.text(max_size=40),
    space=st.text(max_size=40),
    created_at=st.text(max_size=30),
    elapsed=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    extra=st.dictionaries(st.text(max_size=10), st.text(max_size=20) | st.integers(), max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=metas)
def test_property_write_read_is_exact(meta: ImageMetadata) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write_png(small_image(), Path(directory) / "x.png", meta)
        assert read_metadata(path) == meta


@settings(max_examples=400, deadline=None)
@given(meta=metas)
def test_property_a1111_text_reads_back(meta: ImageMetadata) -> None:
    text = to_a1111(meta)
    prompt = md._clean_text(meta.prompt)
    negative = md._clean_text(meta.negative_prompt)
    ours = parse_a1111(text)
    assert ours["prompt"] == a1111_view(prompt)
    assert ours["negative_prompt"] == a1111_view(negative)
    assert ours["seed"] == meta.seed
    assert ours["num_inference_steps"] == meta.num_inference_steps
    assert ours["guidance_scale"] == meta.guidance_scale
    assert (ours["width"], ours["height"]) == (meta.width, meta.height)
    ref = reference_a1111(text)
    # A1111 never mistakes our parameter line, and splits prompt / negative prompt where we do.
    assert ref["Seed"] == str(meta.seed)
    assert ref["Steps"] == str(meta.num_inference_steps)
    assert float(ref["CFG scale"]) == meta.guidance_scale
    assert ref["Prompt"].replace("\u200b", "") == ours["prompt"].replace("\u200b", "")
    assert ref["Negative prompt"].replace("\u200b", "") == ours["negative_prompt"].replace(
        "\u200b", ""
    )
    for key, value in (("Model", meta.model), ("Space", meta.space)):
        cleaned = md._clean_text(value)
        assert ref.get(key, "") == cleaned
        assert ours.get(key, "") == cleaned
    assert comfyui_import(text) is not None
