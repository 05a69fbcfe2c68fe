"""Our PNGs as four other tools read them, through our own re-implementations of their parsers.

Each reader below is written from the tool's public source (read, not copied; nothing of theirs
is in this repository). The versions read:

* AUTOMATIC1111/stable-diffusion-webui ``modules/infotext_utils.py``
  (``parse_generation_parameters``) and ``modules/images.py`` (``read_info_from_image``:
  Pillow's ``image.info["parameters"]``), commit c19d04436496ab29ddca4758a792831ae41b31de.
* lllyasviel/Fooocus ``modules/meta_parser.py`` (``read_info_from_image``,
  ``A1111MetadataParser.to_json``, ``load_parameter_button_click`` and its ``get_*`` helpers),
  ``modules/util.py`` (``unquote``, ``extract_styles_from_prompt``) and ``webui.py``
  (``trigger_metadata_import``, the import button's path), commit
  59f183ab9b8e4a4bbf0fb8bc43886e19e8dfdfae.
* Comfy-Org/ComfyUI_frontend ``src/scripts/pnginfo.ts`` (``importA1111``), commit
  b4cfb80d67b5c0f67f309a84be991c042265cab0, unchanged in substance in the later TypeScript
  versions; ``src/scripts/metadata/png.ts`` (``getFromPngBuffer``), commit
  072a6c245aa78bf276548c5673938af4bbf9867d, which current frontends extend by inflating
  compressed iTXt (``png.test.ts`` "parses compressed iTXt chunk", commit
  344d3335d143b3c30da88521626ffffac40026d6).
* mcmonkeyprojects/SwarmUI ``src/wwwroot/js/genpage/helpers/metadatahelpers.js``
  (``interpretMetadata``, ``upvertAutoWebuiMetadataToSwarm``), ``src/wwwroot/js/util.js``
  (``splitWithTail``), ``src/wwwroot/js/genpage/gentab/params.js`` (``cleanParamName``),
  commit 062407c7bb488fc76ac61044cb929f0d0a30e60f. How its ExifReader decodes a chunk is not
  modelled: it garbles iTXt on drag and drop, for A1111's own files too (docs/metadata.md).

JavaScript semantics kept where they matter: ``.`` stops at \\r, \\n, U+2028 and U+2029,
``\\s`` and ``trim()`` take JavaScript's whitespace, ``split(sep, limit)`` drops the tail.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from sd35.backends import InferenceBackend, parse_spec
from sd35.gallery import SQLiteGalleryStore
from sd35.image_files import write_png
from sd35.inference_standin import InferenceStandin, InferenceStandinConfig
from sd35.metadata import ImageMetadata, to_a1111
from sd35.params import aspect_ratio_presets, size_for_aspect_ratio
from sd35.safekeeping import SafeKeeper
from sd35.studio import metadata_for
from tests.a1111_reference import A1111_PARAM, A1111_SIZE, a1111_parse, a1111_split
from tests.inference_support import TOKEN

# --- JavaScript helpers ---------------------------------------------------------------------------

_JS_WS = "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)
_S = f"[{re.escape(_JS_WS)}]"
_DOT = "[^\n\r\u2028\u2029]"


def js_trim(text: str) -> str:
    return text.strip(_JS_WS)


def js_split(text: str, separator: str, limit: int | None = None) -> list[str]:
    parts = text.split(separator)
    return parts if limit is None else parts[:limit]


def js_number(text: str) -> float:
    """JavaScript's unary ``+`` on a string."""
    text = js_trim(text)
    if text == "":
        return 0.0
    try:
        return float(text)
    except ValueError:
        return float("nan")


def js_parse_int(text: str) -> float:
    match = re.match(r"[+-]?\d+", js_trim(text))
    return float(int(match[0])) if match else float("nan")


# --- what a reader recovers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Recovered:
    """The six things a user needs to remake an image elsewhere."""

    prompt: str | None
    negative: str | None
    steps: float | None
    cfg: float | None
    seed: float | None
    width: float | None
    height: float | None


def expected(meta: ImageMetadata) -> Recovered:
    return Recovered(
        meta.prompt,
        meta.negative_prompt,
        meta.num_inference_steps,
        meta.guidance_scale,
        meta.seed,
        meta.width,
        meta.height,
    )


def pillow_info(png: bytes) -> dict[str, Any]:
    with Image.open(io.BytesIO(png)) as image:
        return dict(image.info)


# --- AUTOMATIC1111 --------------------------------------------------------------------------------


def a1111_reads(png: bytes) -> Recovered:
    res = a1111_parse(pillow_info(png)["parameters"])
    return Recovered(
        res["Prompt"],
        res["Negative prompt"],
        float(res["Steps"]),
        float(res["CFG scale"]),
        float(res["Seed"]),
        float(res["Size-1"]),
        float(res["Size-2"]),
    )


# --- Fooocus --------------------------------------------------------------------------------------

_FOOOCUS_KEYS = {
    "raw_prompt": "Raw prompt",
    "raw_negative_prompt": "Raw negative prompt",
    "negative_prompt": "Negative prompt",
    "styles": "Styles",
    "performance": "Performance",
    "steps": "Steps",
    "sampler": "Sampler",
    "scheduler": "Scheduler",
    "vae": "VAE",
    "guidance_scale": "CFG scale",
    "seed": "Seed",
    "resolution": "Size",
    "sharpness": "Sharpness",
    "adm_guidance": "ADM Guidance",
    "refiner_swap_method": "Refiner Swap Method",
    "adaptive_cfg": "Adaptive CFG",
    "clip_skip": "CLIP Skip",
    "overwrite_switch": "Overwrite Switch",
    "freeu": "FreeU",
    "base_model": "Model",
    "base_model_hash": "Model hash",
    "refiner_model": "Refiner",
    "refiner_model_hash": "Refiner hash",
    "lora_hashes": "Lora hashes",
    "lora_weights": "Lora weights",
    "created_by": "User",
    "version": "Version",
}


def fooocus_unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def fooocus_extract_styles(prompt: str, negative: str) -> tuple[list[str], str, str]:
    """``extract_styles_from_prompt`` when no style matches (none of Fooocus's styles wraps
    our prompts): the "real prompt" is only guessed from a repeated first word."""
    extracted: list[str] = []
    real_prompt = ""
    if prompt != "":
        first_word = prompt.split(", ")[0]
        positions = [i for i in range(len(prompt)) if prompt.startswith(first_word, i)]
        if len(positions) > 1:
            real_prompt = prompt[: positions[-1]]
            extracted.append("Fooocus V2")
            if real_prompt.endswith(", "):
                real_prompt = real_prompt[:-2]
    return list(reversed(extracted)), real_prompt, negative


def fooocus_a1111_to_json(metadata: str) -> dict[str, Any]:
    """``A1111MetadataParser.to_json`` (model/LoRA file look-ups left out: they only rename)."""
    metadata_prompt, metadata_negative, lastline = a1111_split(metadata)
    styles, prompt, negative = fooocus_extract_styles(metadata_prompt, metadata_negative)
    data: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative}
    keys, values = list(_FOOOCUS_KEYS), list(_FOOOCUS_KEYS.values())
    for k, v in A1111_PARAM.findall(lastline):
        try:
            if v != "" and v[0] == '"' and v[-1] == '"':
                v = fooocus_unquote(v)
            m = A1111_SIZE.match(v)
            if m is not None:
                data["resolution"] = str((m[1], m[2]))
            else:
                data[keys[values.index(k)]] = v
        except Exception:
            pass  # Fooocus prints "Error parsing" and goes on (e.g. our "Space")
    if "raw_prompt" in data:
        data["prompt"] = data["raw_prompt"]
    if "raw_negative_prompt" in data:
        data["negative_prompt"] = data["raw_negative_prompt"]
    data["styles"] = str(styles)
    # Fooocus's "performance from steps" fallback never runs: `'performance' in data is None`.
    return data


def fooocus_reads(png: bytes) -> Recovered:
    """The metadata import button: ``read_info_from_image`` → parser → the form's values."""
    info = pillow_info(png)
    parameters, scheme = info.get("parameters"), info.get("fooocus_scheme")
    with_json = False
    with contextlib.suppress(TypeError, ValueError):  # Fooocus's is_json()
        with_json = isinstance(json.loads(parameters), dict)
    if with_json:
        parameters = json.loads(parameters)
    if scheme not in ("fooocus", "a1111"):
        scheme = "fooocus" if isinstance(parameters, dict) else "a1111"
    data = parameters if scheme == "fooocus" else fooocus_a1111_to_json(parameters)

    def get(key: str, fallback: str) -> Any:
        return data.get(key, data.get(fallback))

    prompt, negative = get("prompt", "Prompt"), get("negative_prompt", "Negative Prompt")
    width, height = ast.literal_eval(get("resolution", "Resolution"))  # Fooocus: eval()
    return Recovered(
        prompt if isinstance(prompt, str) else None,
        negative if isinstance(negative, str) else None,
        float(int(get("steps", "Steps"))),
        float(get("guidance_scale", "Guidance Scale")),
        float(int(get("seed", "Seed"))),
        float(int(width)),
        float(int(height)),
    )


# --- ComfyUI frontend -----------------------------------------------------------------------------


def comfyui_png_texts(png: bytes) -> dict[str, str]:
    """``getFromPngBuffer``: tEXt and iTXt (header skipped, compressed ones inflated by current
    frontends), decoded as UTF-8; zTXt is not read."""
    texts: dict[str, str] = {}
    offset = 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind in (b"tEXt", b"comf", b"iTXt"):
            body = png[offset + 8 : offset + 8 + length]
            keyword, _, rest = body.partition(b"\0")
            if kind == b"iTXt":
                flag, method, rest = rest[0], rest[1], rest[2:]
                rest = rest.split(b"\0", 2)[2]
                if flag:
                    if method != 0:
                        offset += 12 + length
                        continue
                    rest = zlib.decompress(rest)
            texts[keyword.decode("latin-1")] = rest.decode("utf-8", "replace")
        offset += 12 + length
    return texts


_COMFY_OPT = re.compile(rf'{_S}*([^:]+:{_S}*([^"{{]{_DOT}*?|"{_DOT}*?"|\{{{_DOT}*?\}})){_S}*(,|$)')


def comfyui_import_a1111(parameters: str) -> dict[str, Any] | None:
    """``importA1111``: the widget values it sets (before the LiteGraph calls)."""
    p = parameters.rfind("\nSteps:")
    if p < 0:
        return None
    line = js_split(parameters[p:], "\n")[1]
    opts: dict[str, str] = {}
    for match in _COMFY_OPT.finditer(line):
        s = js_split(match[0], ":")
        if s[1].endswith(","):
            s[1] = s[1][:-1]
        opts[js_trim(s[0]).lower()] = js_trim(s[1])
    p2 = parameters.rfind("\nNegative prompt:", 0, p + 1)
    if p2 < 0:
        return None
    start, end = sorted((p2 + 18, p))  # JavaScript's substring() swaps its arguments
    positive, negative = js_trim(parameters[:p2]), js_trim(parameters[start:end])
    lora = re.compile(r"<lora:([^:]+:[^>]+)>")
    widgets: dict[str, Any] = {
        "positive": lora.sub("", positive),
        "negative": lora.sub("", negative),
    }
    ceil64 = lambda v: -(-v // 64) * 64  # noqa: E731 - Math.ceil(v / 64) * 64
    for opt, value in opts.items():
        if opt == "cfg scale":
            widgets["cfg"] = js_number(value)
        elif opt == "steps":
            widgets["steps"] = js_number(value)
        elif opt == "seed":
            widgets["seed"] = js_number(value)
        elif opt == "size":
            wxh = js_split(value, "x")
            widgets["width"] = ceil64(js_number(wxh[0]))
            widgets["height"] = ceil64(js_number(wxh[1]))
    return widgets


def comfyui_reads(png: bytes) -> Recovered:
    widgets = comfyui_import_a1111(comfyui_png_texts(png)["parameters"])
    assert widgets is not None, "ComfyUI would not import this file at all"
    return Recovered(
        widgets["positive"],
        widgets["negative"],
        widgets.get("steps"),
        widgets.get("cfg"),
        widgets.get("seed"),
        widgets.get("width"),
        widgets.get("height"),
    )


# --- SwarmUI --------------------------------------------------------------------------------------

#: The parameter ids of SwarmUI's server that matter here (T2IParamTypes, cleaned).
_SWARM_PARAM_IDS = {
    "prompt",
    "negativeprompt",
    "seed",
    "steps",
    "cfgscale",
    "width",
    "height",
    "aspectratio",
    "sampler",
    "scheduler",
    "model",
    "vae",
    "images",
}


def swarm_split_with_tail(text: str, splitter: str, limit: int) -> list[str]:
    parts = text.split(splitter)
    if len(parts) <= limit:
        return parts
    return [*parts[: limit - 1], splitter.join(parts[limit - 1 :])]


def swarm_upvert(metadata: str) -> dict[str, Any] | None:
    """``upvertAutoWebuiMetadataToSwarm`` (None where it throws and the caller drops it)."""
    real: dict[str, Any] = {}
    if "\nNegative prompt: " in metadata:
        parts = swarm_split_with_tail(metadata, "\nNegative prompt: ", 2)
        real["prompt"] = parts[0]
        sub = js_split(parts[1], "\n", 2)
        real["negativeprompt"] = sub[0]
        if len(sub) < 2:
            return None  # undefined.split(): TypeError, caught, metadata = null
        metadata = sub[1]
    else:
        lines = metadata.split("\n")
        real["prompt"] = "\n".join(lines[:-1])
        metadata = lines[-1]
    lines = metadata.split("\n")
    parts = [[js_trim(y) for y in x.split(":")] for x in lines[-1].split(",")]
    for part in parts:
        if len(part) != 2:
            continue
        clean = re.sub("[^a-z]", "", part[0].lower())
        if clean in _SWARM_PARAM_IDS:
            real[clean] = part[1]
        elif clean == "size":
            sizes = [js_parse_int(x) for x in part[1].split("x")]
            if len(sizes) == 2:
                real["width"], real["height"] = sizes
        elif clean == "scheduletype":
            real["scheduler"] = part[1].lower()
        else:
            real[part[0]] = part[1]
    return real


def swarm_interpret(metadata: str) -> dict[str, Any] | None:
    """``interpretMetadata`` for a text value: its ``sui_image_params``, or None."""
    metadata = js_trim(metadata)
    if metadata.startswith("{"):
        data = json.loads(metadata)
        return data.get("sui_image_params")
    if len(metadata.split("\n")) < 2:
        return None
    return swarm_upvert(metadata)


def swarmui_reads(png: bytes) -> Recovered:
    params = swarm_interpret(pillow_info(png)["parameters"])
    assert params is not None, "SwarmUI would drop this file's metadata"

    def number(key: str) -> float | None:
        value = params.get(key)
        return None if value is None else js_number(str(value))

    return Recovered(
        params.get("prompt"),
        params.get("negativeprompt"),
        number("steps"),
        number("cfgscale"),
        number("seed"),
        number("width"),
        number("height"),
    )


READERS = {
    "AUTOMATIC1111": a1111_reads,
    "Fooocus": fooocus_reads,
    "ComfyUI": comfyui_reads,
    "SwarmUI": swarmui_reads,
}

# --- the six kinds of text ------------------------------------------------------------------------


def _long_prompt() -> str:
    words = "a vast cathedral of glass, morning fog, (intricate:1.1), 光と影, детали, 🌫️"
    text = ", ".join(f"{words} #{i}" for i in range(100))
    return text[:3000]


def sample(name: str, prompt: str, negative: str, **kwargs: Any) -> ImageMetadata:
    return ImageMetadata(
        prompt=prompt,
        negative_prompt=negative,
        seed=kwargs.get("seed", 1234567890),
        width=kwargs.get("width", 1024),
        height=kwargs.get("height", 1024),
        guidance_scale=kwargs.get("guidance_scale", 4.5),
        num_inference_steps=kwargs.get("steps", 40),
        created_at="2026-12-01T10:00:00+00:00",
        extra={"sample": name},
    )


_PRESET = size_for_aspect_ratio("3:2")

SAMPLES = {
    "plain": sample("plain", "a lighthouse on a cliff at sunset", "blurry, lowres"),
    "empty negative": sample("empty negative", "a red fox in fresh snow", "", seed=7, steps=28),
    "commas colons quotes newlines": sample(
        "punctuation",
        'portrait of an old fisherman, weathered face: (detailed:1.2), "sharp focus"\n'
        "style: oil painting, Seed: 7, Steps: 3, CFG scale: 9, Size: 64x64\n"
        'she said "hello", then: {left} \\ right',
        'cartoon, "lowres", text: watermark, Seed: 1, Steps: 2',
        guidance_scale=3.7,
        seed=2147483647,
        steps=50,
    ),
    "Russian Japanese emoji": sample(
        "unicode",
        "кот в сапогах на крыше, 猫が好き、夜の東京, 🐱🐈‍⬛✨",
        "размыто, ぼやけた, 😵",
        guidance_scale=7.5,
        seed=0,
    ),
    "3000 characters": sample("long", _long_prompt(), "lowres, (bad hands:1.3)", steps=1),
    "3:2 preset": sample(
        "preset",
        "a quiet harbour at dawn",
        "people",
        width=_PRESET.width,
        height=_PRESET.height,
        guidance_scale=0.0,
    ),
}


def png_bytes(meta: ImageMetadata, directory: Path) -> bytes:
    path = write_png(Image.new("RGB", (16, 16), (90, 120, 150)), directory / "s.png", meta)
    return path.read_bytes()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    directory = tmp_path_factory.mktemp("samples")
    return {name: png_bytes(meta, directory) for name, meta in SAMPLES.items()}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_reader_recovers_every_sample_exactly(
    files: dict[str, bytes], reader: str, name: str
) -> None:
    assert READERS[reader](files[name]) == expected(SAMPLES[name])


# --- why the writer looks the way it does: each rule, broken, fails a reader ---------------------


def with_parameters(png_text: str) -> bytes:
    """A PNG whose ``parameters`` is ``png_text``, in tEXt or iTXt as our writer chooses."""
    info = PngImagePlugin.PngInfo()
    if png_text.isascii():
        info.add_text("parameters", png_text)
    else:
        info.add_itxt("parameters", png_text)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _without_raw(text: str) -> str:
    return re.sub(r' Raw (negative )?prompt: "[^"]*",', "", text)


def test_fooocus_gets_an_empty_prompt_without_the_raw_prompt_keys() -> None:
    meta = SAMPLES["plain"]
    old_style = _without_raw(to_a1111(meta))
    assert "Raw prompt" not in old_style
    assert fooocus_reads(with_parameters(old_style)).prompt == ""
    assert fooocus_reads(with_parameters(to_a1111(meta))).prompt == meta.prompt


def test_raw_prompt_at_the_end_lets_text_in_it_override_comfyuis_keys() -> None:
    meta = sample("seed in text", 'she said "hi", Seed: 7', "")
    base = _without_raw(to_a1111(meta))
    # As Fooocus itself quotes (plain JSON), at the end of the line:
    at_end = base + ", Raw prompt: " + json.dumps(meta.prompt, ensure_ascii=False)
    widgets = comfyui_import_a1111(at_end)
    assert widgets is not None and widgets["seed"] != meta.seed  # '7"' from the prompt: NaN
    assert swarm_upvert(at_end)["seed"] == '7"'
    ours = comfyui_import_a1111(to_a1111(meta))
    assert ours is not None and ours["seed"] == meta.seed
    assert swarm_upvert(to_a1111(meta))["seed"] == str(meta.seed)


def test_plain_json_quotes_would_cut_comfyuis_value_and_swallow_the_next_key() -> None:
    meta = sample("q", "x", 'she said "hi", then left')
    text = to_a1111(meta)
    plain = text.replace(
        'Raw negative prompt: "she said \\u0022hi\\u0022, then left"',
        "Raw negative prompt: " + json.dumps(meta.negative_prompt),
    )
    assert plain != text
    broken = comfyui_import_a1111(plain)
    assert broken is not None and "cfg" not in broken  # "CFG scale" glued to the text before
    fixed = comfyui_import_a1111(text)
    assert fixed is not None and fixed["cfg"] == 4.5


def test_a_colon_in_raw_text_would_let_swarmui_take_a_key_from_the_prompt() -> None:
    meta = SAMPLES["commas colons quotes newlines"]
    text = to_a1111(meta)
    unescaped = text.replace("\\u003a", ":")
    assert swarm_upvert(unescaped)["steps"] == '2"'  # "Steps: 2" from the negative prompt
    assert swarm_upvert(unescaped)["seed"] == str(meta.seed)  # the real Seed comes later
    assert swarm_upvert(text)["steps"] == "50"


def test_swarmui_glues_the_negative_line_to_the_prompt_without_its_space() -> None:
    text = to_a1111(SAMPLES["empty negative"])
    assert "\nNegative prompt: \n" in text
    no_space = text.replace("\nNegative prompt: \n", "\nNegative prompt:\n")
    assert swarm_upvert(no_space)["prompt"] == "a red fox in fresh snow\nNegative prompt:"
    assert swarm_upvert(text)["prompt"] == "a red fox in fresh snow"


def test_comfyui_rounds_sizes_up_to_64_so_presets_are_on_that_grid() -> None:
    old = comfyui_import_a1111(to_a1111(sample("old", "x", "", width=1024, height=672)))
    assert old is not None and old["height"] == 704
    for size in aspect_ratio_presets().values():
        widgets = comfyui_import_a1111(
            to_a1111(sample("p", "x", "", width=size.width, height=size.height))
        )
        assert widgets is not None
        assert (widgets["width"], widgets["height"]) == (size.width, size.height)


# --- not ours to fix: the same happens to AUTOMATIC1111's own files -------------------------------

A1111_OWN = (
    "portrait of an old fisherman\n"
    "Negative prompt: cartoon, painting\n3d render\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 42, "
    "Size: 832x1216, Model hash: 7f96a1a9ca, Model: juggernautXL_v9, Version: v1.10.1"
)


def test_swarmui_keeps_only_the_first_line_of_a_multiline_negative_prompt() -> None:
    theirs = swarm_upvert(A1111_OWN)
    assert theirs is not None
    assert theirs["negativeprompt"] == "cartoon, painting"
    assert "steps" not in theirs  # it reads the negative's second line as the parameters
    ours = swarm_upvert(to_a1111(sample("m", "p", "cartoon, painting\n3d render")))
    assert ours is not None and ours["negativeprompt"] == "cartoon, painting"
    assert a1111_parse(A1111_OWN)["Negative prompt"] == "cartoon, painting\n3d render"


def test_swarmui_drops_the_metadata_of_a_prompt_that_starts_with_a_brace() -> None:
    # It takes text starting with "{" for JSON; when that fails to parse, it drops it all.
    theirs = "{red|blue} car\n" + A1111_OWN.split("\n", 1)[1]
    assert a1111_parse(theirs)["Prompt"] == "{red|blue} car"
    with pytest.raises(json.JSONDecodeError):  # console.error, then metadata = null
        swarm_interpret(theirs)
    with pytest.raises(json.JSONDecodeError):
        swarm_interpret(to_a1111(sample("brace", "{red|blue} car", "")))


def test_comfyui_reads_uncompressed_and_compressed_itxt(tmp_path: Path) -> None:
    for compressed in (False, True):
        info = PngImagePlugin.PngInfo()
        info.add_itxt("parameters", "кот", zip=compressed)
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
        assert comfyui_png_texts(buffer.getvalue())["parameters"] == "кот"
    # Ours stay uncompressed for the frontends in between that do not inflate.
    data = png_bytes(SAMPLES["Russian Japanese emoji"], tmp_path)
    pos = data.index(b"iTXtparameters\0")
    assert data[pos + len(b"iTXtparameters\0")] == 0


# --- any text at all: no prompt can change the numbers a reader recovers -------------------------

_texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80
)
_words = st.sampled_from(
    [
        *('"', ",", ":", "\n", "\r", "\u2028", "\\", "{", "}", "кот 🐱"),
        *("Seed: 7", "Steps: 3", "Size: 64x64", 'x", CFG scale: 9', "\nSteps: 1"),
        *("Negative prompt: ", "\nNegative prompt: x"),
    ]
)
_prompts = st.lists(st.one_of(_words, _words, _texts), max_size=8).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=_prompts, negative=_prompts)
@example(prompt="a, Steps: 3, b", negative="c, Seed: 1")
@example(prompt='she said "hi", then', negative='x", CFG scale: 9, Size: 64x64')
@example(prompt="line\nSteps: 1, CFG scale: 2, Seed: 3", negative="Negative prompt: \u2028")
def test_property_numbers_survive_any_text_in_every_reader(prompt: str, negative: str) -> None:
    meta = sample("any", prompt, negative, seed=31337, steps=17, guidance_scale=6.5, width=640)
    png = with_parameters(to_a1111(meta))
    numbers = (17, 6.5, 31337, 640, 1024)
    readers = [a1111_reads, fooocus_reads, comfyui_reads]
    if "\n" not in negative and not js_trim(prompt).startswith("{"):  # SwarmUI's own limits
        readers.append(swarmui_reads)
    for reader in readers:
        got = reader(png)
        assert (got.steps, got.cfg, got.seed, got.width, got.height) == numbers, reader.__name__
    # Fooocus takes both texts from our raw values: exact, unless one is nothing but a size.
    fooocus = fooocus_reads(png)
    if not re.match(r"^(\d+)x(\d+)$", prompt):
        assert fooocus.prompt == prompt
    if not re.match(r"^(\d+)x(\d+)$", negative):
        assert fooocus.negative == negative


# --- a provider's PNG, stored with our chunks spliced in (not decoded and re-encoded) -----------

#: What a provider that writes its own metadata puts in its PNG.
PROVIDER_TEXTS = {
    "parameters": "a cat\nNegative prompt: dog\nSteps: 3, CFG scale: 7, Seed: 1, Size: 64x64",
    "fooocus_scheme": "fooocus",
    "sd35": '{"prompt": "not ours"}',
    "Software": "provider 1.0",
}


def png_text_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(chunk type, keyword) of every text chunk, in file order."""
    found, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            found.append((kind, png[pos + 8 : pos + 8 + length].partition(b"\0")[0]))
        pos += 12 + length
    return found


def idat(png: bytes) -> bytes:
    data, pos = b"", 8
    while pos < len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        if kind == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return data


def _store_result(store: SQLiteGalleryStore, result: Any) -> Any:
    """Save a backend's result as the studio does (``Studio.save``): its metadata, then the
    keeper, which stores the provider's bytes."""
    return SafeKeeper(store).save(result, metadata_for(result, space=""))


@pytest.fixture(scope="module")
def provider_files(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[bytes, bytes]]]:
    """Each sample made by the Inference backend on its loopback stand-in (whose PNGs carry
    their own ``parameters``, ``fooocus_scheme`` and ``sd35``) and stored in a gallery: the
    provider's bytes and the saved PNG's."""
    folder = tmp_path_factory.mktemp("provider")
    config = InferenceStandinConfig(texts=PROVIDER_TEXTS)
    with pytest.MonkeyPatch.context() as patch, InferenceStandin(config) as standin:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        backend = InferenceBackend(
            parse_spec(f"endpoint:{standin.url}"), token=TOKEN, download_dir=folder / "dl"
        )
        store = SQLiteGalleryStore(folder / "gallery")
        made = {}
        for name, meta in SAMPLES.items():
            request = replace(meta.to_request(), width=256, height=256)
            result = list(backend.generate(request))[-1]
            stored = _store_result(store, result)
            made[name] = (Path(result.path).read_bytes(), stored.path.read_bytes())
        store.close()
        yield made


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_providers_png_is_stored_with_ours_and_reads_back_in_every_reader(
    provider_files: dict[str, tuple[bytes, bytes]], reader: str, name: str
) -> None:
    _, saved = provider_files[name]
    want = replace(SAMPLES[name], width=256, height=256)
    assert READERS[reader](saved) == expected(want)


def test_a_providers_png_keeps_its_pixels_and_ends_with_our_chunks_only(
    provider_files: dict[str, tuple[bytes, bytes]],
) -> None:
    for provider, saved in provider_files.values():
        assert (b"tEXt", b"parameters") in png_text_chunks(provider)  # the provider's own
        # Ours once each, right after IHDR; the provider's "Software" (another keyword) stays.
        keywords = [keyword for _, keyword in png_text_chunks(saved)]
        assert keywords == [b"parameters", b"fooocus_scheme", b"sd35", b"Software"]
        assert saved[12:16] == b"IHDR" and saved[37:41] in (b"tEXt", b"iTXt")
        assert idat(saved) == idat(provider)  # not re-encoded
        with Image.open(io.BytesIO(provider)) as theirs, Image.open(io.BytesIO(saved)) as ours:
            assert ours.tobytes() == theirs.tobytes() and ours.size == theirs.size
            assert ours.info["fooocus_scheme"] == "a1111"
        assert "not ours" not in saved.decode("latin-1")
        assert TOKEN.encode() not in saved


@pytest.mark.parametrize("kind", ["JPEG", "WEBP"])
def test_a_providers_jpeg_or_webp_is_decoded_once_into_our_png(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with InferenceStandin(InferenceStandinConfig(image_format=kind)) as standin:
        backend = InferenceBackend(parse_spec(f"endpoint:{standin.url}"), download_dir=tmp_path)
        meta = SAMPLES["plain"]
        result = list(backend.generate(replace(meta.to_request(), width=256, height=256)))[-1]
    with SQLiteGalleryStore(tmp_path / "gallery") as store:
        stored = _store_result(store, result)
    saved = stored.path.read_bytes()
    assert saved.startswith(b"\x89PNG\r\n\x1a\n")
    for reader in READERS.values():
        assert reader(saved) == expected(replace(meta, width=256, height=256))
    with Image.open(result.path) as theirs, Image.open(stored.path) as ours:
        assert ours.convert("RGB").tobytes() == theirs.convert("RGB").tobytes()
