"""PNG Info reads every tool's files: sample files written the way each tool writes its chunks.

How each tool writes (read in its public source; commits as in tests/test_reader_compat.py):
AUTOMATIC1111 ``images.save_image_with_geninfo`` and Fooocus ``modules/private_logger.py`` use
Pillow's ``PngInfo.add_text``; ComfyUI's ``SaveImage`` (``nodes.py``) adds ``prompt`` and
``workflow`` as ``json.dumps`` text the same way; SwarmUI (``src/Media/ImageFile.cs``) stores
indented, ASCII-escaped JSON as ``parameters`` through ImageSharp, which compresses text over
1,024 bytes into zTXt; InvokeAI stores its pydantic metadata JSON as ``invokeai_metadata``.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from sd35.metadata import ImageMetadata, NotAnImageError, png_info, read_metadata, to_a1111
from sd35.panels.pnginfo import show_png
from sd35.pnginfo import NO_METADATA, UNKNOWN, read_png_info


def pillow_png(texts: dict[str, str]) -> bytes:
    """A PNG with ``texts`` added as Pillow's ``add_text`` does (tEXt, or iTXt if not Latin-1)."""
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (12, 8), (200, 100, 50)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def ztxt_png(key: str, value: str) -> bytes:
    """A PNG with one zTXt chunk inserted before IDAT (what ImageSharp writes for long text)."""
    data = pillow_png({})
    body = key.encode("latin-1") + b"\0\0" + zlib.compress(value.encode("latin-1"))
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"zTXt" + body))
    pos = data.index(b"IDAT") - 4
    return data[:pos] + chunk + data[pos:]


# --- AUTOMATIC1111 --------------------------------------------------------------------------------

A1111_TEXT = (
    "masterpiece, best quality, 1girl, <lora:add_detail:0.6>\n"
    "Negative prompt: (worst quality, low quality:1.4), easynegative\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3405691582, "
    'Size: 512x768, Model hash: 7f96a1a9ca, Model: anythingV5_PrtRE, Lora hashes: "add_detail: '
    '7c6bad76eb54", Version: v1.10.1'
)


def test_a1111_file() -> None:
    info = read_png_info(pillow_png({"parameters": A1111_TEXT}))
    assert info.source == "AUTOMATIC1111"
    assert info.chunks == {"parameters": A1111_TEXT}
    assert ("Sampler", "DPM++ 2M") in info.fields and ("Model hash", "7f96a1a9ca") in info.fields
    assert info.fields[0] == ("Prompt", "masterpiece, best quality, 1girl, <lora:add_detail:0.6>")
    meta = info.metadata
    assert meta is not None
    assert meta.negative_prompt == "(worst quality, low quality:1.4), easynegative"
    assert (meta.num_inference_steps, meta.guidance_scale, meta.seed) == (28, 7.0, 3405691582)
    assert (meta.width, meta.height, meta.model) == (512, 768, "anythingV5_PrtRE")
    assert "Sampler" in info.note and "Schedule type" in info.note  # not used by this Space
    assert "seed" in info.note  # 3405691582 is beyond the Space's seeds: the note says so


def test_a1111_file_whose_prompt_starts_with_a_brace() -> None:
    text = "{red|blue} car, (masterpiece:1.2)\n" + A1111_TEXT.split("\n", 1)[1]
    data = pillow_png({"parameters": text})
    info = read_png_info(data)
    assert info.source == "AUTOMATIC1111"
    assert info.metadata is not None and info.metadata.prompt == "{red|blue} car, (masterpiece:1.2)"
    meta = read_metadata(data)
    assert meta is not None and meta.seed == 3405691582


def test_a1111_file_without_negative_line() -> None:
    text = "a red apple\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512"
    meta = read_png_info(pillow_png({"parameters": text})).metadata
    assert meta is not None and (meta.prompt, meta.negative_prompt) == ("a red apple", "")


# --- Fooocus --------------------------------------------------------------------------------------

FOOOCUS_JSON = {
    "adm_guidance": "(1.5, 0.8, 0.3)",
    "base_model": "juggernautXL_v8Rundiffusion",
    "base_model_hash": "aeb7e9e689",
    "full_negative_prompt": ["unrealistic, saturated", "(worst quality:1.4)"],
    "full_prompt": ["a cat on a windowsill, warm light", "cinematic, highly detailed"],
    "guidance_scale": 4.0,
    "loras": [],
    "metadata_scheme": "fooocus",
    "negative_prompt": "",
    "performance": "Speed",
    "prompt": "a cat on a windowsill, warm light",
    "prompt_expansion": "a cat on a windowsill, warm light, cinematic",
    "resolution": "(896, 1152)",
    "sampler": "dpmpp_2m_sde_gpu",
    "scheduler": "karras",
    "seed": "8419383828",
    "sharpness": 2.0,
    "steps": 30,
    "styles": "['Fooocus V2', 'Fooocus Enhance']",
    "vae": "Default (model)",
    "version": "Fooocus v2.5.5",
}


def test_fooocus_own_scheme() -> None:
    text = json.dumps(dict(sorted(FOOOCUS_JSON.items())))
    info = read_png_info(pillow_png({"parameters": text, "fooocus_scheme": "fooocus"}))
    assert info.source == "Fooocus"
    assert ("sampler", "dpmpp_2m_sde_gpu") in info.fields
    meta = info.metadata
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt) == ("a cat on a windowsill, warm light", "")
    assert (meta.width, meta.height, meta.num_inference_steps) == (896, 1152, 30)
    assert (meta.seed, meta.guidance_scale) == (8419383828, 4.0)
    assert "Fooocus styles" in info.note and "sharpness" in info.note


def test_fooocus_a1111_scheme_with_raw_prompt() -> None:
    # A1111MetadataParser.to_string: the full (styled) prompt on the lines, the typed one raw.
    text = (
        "a cat, cinematic, highly detailed\nNegative prompt: unrealistic\n"
        "Steps: 30, Sampler: DPM++ 2M SDE Karras, Seed: 99, Size: 896x1152, CFG scale: 4.0, "
        'Model: juggernautXL, Performance: Speed, Scheduler: karras, Raw prompt: "a cat", '
        "Raw negative prompt: unrealistic, Version: Fooocus v2.5.5"
    )
    info = read_png_info(pillow_png({"parameters": text, "fooocus_scheme": "a1111"}))
    assert info.source == "Fooocus"
    assert ("Raw prompt", "a cat") in info.fields
    meta = info.metadata
    assert meta is not None and meta.prompt == "a cat, cinematic, highly detailed"  # as made
    assert meta.negative_prompt == "unrealistic"


# --- SwarmUI --------------------------------------------------------------------------------------


def swarm_text(prompt: str, **extra: Any) -> str:
    params = {
        "prompt": prompt,
        "negativeprompt": "blurry\nlowres",
        "model": "OfficialStableDiffusion/sd3.5_large",
        "seed": 1155913443,
        "steps": 28,
        "cfgscale": 4.5,
        "aspectratio": "3:2",
        "width": 1216,
        "height": 832,
        "sampler": "euler",
        "scheduler": "sgm_uniform",
        "swarm_version": "0.9.7.0",
        **extra,
    }
    data = {"sui_image_params": params, "sui_extra_data": {"date": "2026-11-30"}}
    return json.dumps(data, indent=2, ensure_ascii=True)  # Newtonsoft: Indented, EscapeNonAscii


def test_swarmui_file() -> None:
    text = swarm_text("кот, <lora:detail:0.5> on a roof")
    info = read_png_info(pillow_png({"parameters": text}))
    assert info.source == "SwarmUI"
    meta = info.metadata
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt) == (
        "кот, <lora:detail:0.5> on a roof",
        "blurry\nlowres",
    )
    assert (meta.seed, meta.num_inference_steps, meta.guidance_scale) == (1155913443, 28, 4.5)
    assert (meta.width, meta.height, meta.model) == (
        1216,
        832,
        "OfficialStableDiffusion/sd3.5_large",
    )
    assert ("date", "2026-11-30") in info.fields
    assert "sampler" in info.note and "width" in info.note  # unused; 1216 beyond the Space


def test_swarmui_long_metadata_in_ztxt() -> None:
    text = swarm_text("a long prompt, " * 120)
    assert len(text) > 1024
    info = read_png_info(ztxt_png("parameters", text))
    assert info.chunks["parameters"] == text
    assert info.source == "SwarmUI" and info.metadata is not None
    assert info.metadata.prompt == "a long prompt, " * 120


# --- ComfyUI --------------------------------------------------------------------------------------


def api_node(kind: str, **inputs: Any) -> dict[str, Any]:
    return {"inputs": inputs, "class_type": kind, "_meta": {"title": kind}}


SIMPLE_PROMPT = {
    "4": api_node("CheckpointLoaderSimple", ckpt_name="sd3.5_large.safetensors"),
    "6": api_node("CLIPTextEncode", text="a cosy cabin, snow: falling", clip=["4", 1]),
    "7": api_node("CLIPTextEncode", text="blurry", clip=["4", 1]),
    "5": api_node("EmptySD3LatentImage", width=1024, height=1024, batch_size=1),
    "3": api_node(
        "KSampler",
        seed=156680208700286,
        steps=28,
        cfg=4.5,
        sampler_name="euler",
        scheduler="sgm_uniform",
        denoise=1.0,
        model=["4", 0],
        positive=["6", 0],
        negative=["7", 0],
        latent_image=["5", 0],
    ),
    "8": api_node("VAEDecode", samples=["3", 0], vae=["4", 2]),
    "9": api_node("SaveImage", filename_prefix="ComfyUI", images=["8", 0]),
}


def comfy_png(prompt: dict[str, Any] | None, workflow: dict[str, Any] | None) -> bytes:
    texts = {}
    if prompt is not None:
        texts["prompt"] = json.dumps(prompt)
    if workflow is not None:
        texts["workflow"] = json.dumps(workflow)
    return pillow_png(texts)


def test_comfyui_prompt_graph() -> None:
    info = read_png_info(comfy_png(SIMPLE_PROMPT, {"nodes": [], "links": []}))
    assert info.source == "ComfyUI"
    meta = info.metadata
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt) == ("a cosy cabin, snow: falling", "blurry")
    assert (meta.num_inference_steps, meta.guidance_scale) == (28, 4.5)
    assert (meta.width, meta.height, meta.model) == (1024, 1024, "sd3.5_large.safetensors")
    assert meta.seed == 156680208700286
    assert ("Sampler", "euler") in info.fields and ("Scheduler", "sgm_uniform") in info.fields
    assert set(info.chunks) == {"prompt", "workflow"}


def test_comfyui_sd35_graph_with_zeroed_and_combined_negative() -> None:
    # The SD3.5 example workflow: the negative is its text for the first 10 % of the steps and
    # zeroed after, combined; a seed from a primitive node; the text from a string node.
    prompt = json.loads(json.dumps(SIMPLE_PROMPT))
    prompt["6"]["inputs"]["text"] = ["20", 0]
    prompt["20"] = api_node("PrimitiveString", value="a lighthouse\nat dusk")
    prompt["3"]["inputs"]["seed"] = ["21", 0]
    prompt["21"] = api_node("PrimitiveInt", value=42)
    prompt["70"] = api_node("ConditioningZeroOut", conditioning=["7", 0])
    prompt["68"] = api_node("ConditioningSetTimestepRange", conditioning=["7", 0], start=0, end=0.1)
    prompt["69"] = api_node(
        "ConditioningSetTimestepRange", conditioning=["70", 0], start=0.1, end=1
    )
    prompt["67"] = api_node(
        "ConditioningCombine", conditioning_1=["68", 0], conditioning_2=["69", 0]
    )
    prompt["3"]["inputs"]["negative"] = ["67", 0]
    meta = read_png_info(comfy_png(prompt, None)).metadata
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt, meta.seed) == ("a lighthouse\nat dusk", "blurry", 42)


def test_comfyui_img2img_through_controlnet() -> None:
    prompt = json.loads(json.dumps(SIMPLE_PROMPT))
    prompt["1"] = api_node(
        "ControlNetApplyAdvanced", positive=["6", 0], negative=["7", 0], strength=0.8
    )
    prompt["3"]["inputs"].update(positive=["1", 0], negative=["1", 1], latent_image=["2", 0])
    prompt["2"] = api_node("VAEEncode", pixels=["10", 0], vae=["4", 2])
    prompt["10"] = api_node("LoadImage", image="photo.png")
    info = read_png_info(comfy_png(prompt, None))
    meta = info.metadata
    assert meta is not None and info.fields[-1] == ("Sampler node", "3 (KSampler)")
    assert (meta.prompt, meta.negative_prompt) == ("a cosy cabin, snow: falling", "blurry")
    assert "Width" in info.note  # an image's latent: no size in the graph


def test_comfyui_sampler_custom_advanced() -> None:
    prompt = {
        "1": api_node("CheckpointLoaderSimple", ckpt_name="sd3.5_large.safetensors"),
        "2": api_node("CLIPTextEncode", text="a red kite", clip=["1", 1]),
        "3": api_node("CLIPTextEncode", text="", clip=["1", 1]),
        "4": api_node("CFGGuider", cfg=3.5, model=["1", 0], positive=["2", 0], negative=["3", 0]),
        "5": api_node("RandomNoise", noise_seed=77),
        "6": api_node("BasicScheduler", scheduler="simple", steps=20, denoise=1.0, model=["1", 0]),
        "7": api_node("KSamplerSelect", sampler_name="euler"),
        "8": api_node("EmptySD3LatentImage", width=832, height=1216, batch_size=1),
        "9": api_node(
            "SamplerCustomAdvanced",
            noise=["5", 0],
            guider=["4", 0],
            sampler=["7", 0],
            sigmas=["6", 0],
            latent_image=["8", 0],
        ),
    }
    meta = read_png_info(comfy_png(prompt, None)).metadata
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt, meta.seed) == ("a red kite", "", 77)
    assert (meta.num_inference_steps, meta.guidance_scale) == (20, 3.5)
    assert (meta.width, meta.height, meta.model) == (832, 1216, "sd3.5_large.safetensors")


def test_comfyui_workflow_only() -> None:
    def node(id_: int, kind: str, widgets: list[Any], inputs: list[tuple[str, int]]) -> dict:
        slots = [{"name": name, "type": "X", "link": link} for name, link in inputs]
        return {"id": id_, "type": kind, "widgets_values": widgets, "inputs": slots}

    workflow = {
        "nodes": [
            node(4, "CheckpointLoaderSimple", ["sd3.5_large.safetensors"], []),
            node(6, "CLIPTextEncode", ["a paper boat"], [("clip", 3)]),
            node(7, "CLIPTextEncode", ["ugly"], [("clip", 5)]),
            node(5, "EmptyLatentImage", [768, 1024, 1], []),
            node(
                3,
                "KSampler",
                [9001, "randomize", 33, 5.5, "euler", "normal", 1],
                [("model", 1), ("positive", 4), ("negative", 6), ("latent_image", 2)],
            ),
        ],
        "links": [
            [1, 4, 0, 3, 0, "MODEL"],
            [2, 5, 0, 3, 3, "LATENT"],
            [3, 4, 1, 6, 0, "CLIP"],
            [4, 6, 0, 3, 1, "CONDITIONING"],
            [5, 4, 1, 7, 0, "CLIP"],
            [6, 7, 0, 3, 2, "CONDITIONING"],
        ],
    }
    info = read_png_info(comfy_png(None, workflow))
    assert info.source == "ComfyUI"
    meta = info.metadata
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt, meta.seed) == ("a paper boat", "ugly", 9001)
    assert (meta.num_inference_steps, meta.guidance_scale) == (33, 5.5)
    assert (meta.width, meta.height, meta.model) == (768, 1024, "sd3.5_large.safetensors")


def test_comfyui_graph_without_sampler_is_shown_raw() -> None:
    prompt = {
        "1": api_node("LoadImage", image="x.png"),
        "2": api_node("SaveImage", images=["1", 0]),
    }
    info = read_png_info(comfy_png(prompt, None))
    assert info.source == "ComfyUI" and info.metadata is None
    assert "no sampler" in info.note
    assert json.loads(info.chunks["prompt"]) == prompt


def test_comfyui_cyclic_graph_does_not_hang() -> None:
    prompt = json.loads(json.dumps(SIMPLE_PROMPT))
    prompt["6"] = api_node("ConditioningCombine", conditioning_1=["6", 0], conditioning_2=["6", 0])
    prompt["3"]["inputs"]["seed"] = ["30", 0]
    prompt["30"] = api_node("PrimitiveInt", value=["30", 0])
    info = read_png_info(comfy_png(prompt, None))
    assert info.source == "ComfyUI" and info.metadata is None
    assert info.note


# --- InvokeAI ---------------------------------------------------------------------------------


def test_invokeai_file() -> None:
    metadata = {
        "generation_mode": "txt2img",
        "positive_prompt": "ein Schloss im Nebel, 城",
        "negative_prompt": "",
        "width": 1024,
        "height": 576,
        "seed": 3581214567,
        "rand_device": "cpu",
        "cfg_scale": 5.0,
        "cfg_rescale_multiplier": 0,
        "steps": 30,
        "scheduler": "euler",
        "model": {"key": "b1c2", "hash": "blake3:0123", "name": "SD3.5 Large", "base": "sd-3"},
        "app_version": "5.6.0",
    }
    text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))  # pydantic's JSON
    data = pillow_png({"invokeai_metadata": text, "invokeai_graph": '{"id":"g"}'})
    info = read_png_info(data)
    assert info.source == "InvokeAI"
    assert info.chunks["invokeai_metadata"] == text
    meta = info.metadata
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt, meta.seed) == (
        "ein Schloss im Nebel, 城",
        "",
        3581214567,
    )
    assert (meta.width, meta.height, meta.num_inference_steps, meta.guidance_scale) == (
        1024,
        576,
        30,
        5.0,
    )
    assert meta.model == "SD3.5 Large"
    assert "scheduler" in info.note and "rand_device" in info.note


# --- ours, none, unknown, broken ----------------------------------------------------------------


def test_our_file_round_trips_exactly(tmp_path: Path) -> None:
    meta = ImageMetadata(prompt="  leading space\nкот", negative_prompt="x", seed=5, width=960)
    path = tmp_path / "ours.png"
    Image.new("RGB", (8, 8)).save(path, format="PNG", pnginfo=png_info(meta))
    info = read_png_info(path)
    assert info.source == "sd35" and info.metadata == meta and info.note == ""
    assert info.chunks["parameters"] == to_a1111(meta)
    assert info.chunks["fooocus_scheme"] == "a1111"
    _, _, fields, raw, sent = show_png(None, str(path))  # what the PNG Info tab shows
    assert sent == meta and "**Seed:** 5" in fields and "--- parameters ---" in raw


def test_our_a1111_text_alone_is_still_ours_and_exact() -> None:
    meta = ImageMetadata(prompt="  two\n  lines  ", negative_prompt="neg", created_at="")
    info = read_png_info(pillow_png({"parameters": to_a1111(meta)}))
    assert info.source == "sd35"
    assert info.metadata is not None and info.metadata.prompt == meta.prompt  # via Raw prompt


def test_png_without_metadata_says_so() -> None:
    info = read_png_info(pillow_png({}))
    assert (info.source, info.metadata, info.chunks, info.fields) == ("", None, {}, [])
    assert info.note == NO_METADATA
    assert shown(pillow_png({}))[1] == NO_METADATA


def shown(data: bytes) -> tuple[Any, ...]:
    """What the PNG Info tab shows for a dropped file with ``data``: preview, summary,
    fields, raw chunks, metadata (``sd35.panels.pnginfo.show_png``)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dropped.png"
        path.write_bytes(data)
        return show_png(None, str(path))


def test_unknown_chunks_are_shown_raw() -> None:
    info = read_png_info(pillow_png({"Software": "GIMP 2.10", "Comment": "holiday, 2026"}))
    assert info.source == "" and info.metadata is None and info.note == UNKNOWN
    raw = shown(pillow_png({"Software": "GIMP 2.10", "Comment": "holiday, 2026"}))[3]
    assert "--- Software ---\nGIMP 2.10" in raw and "holiday, 2026" in raw


@pytest.mark.parametrize(
    "texts",
    [
        {"sd35": "{broken", "parameters": "{also broken"},
        {"parameters": '{"sui_image_params": 5}'},
        {"parameters": '{"sui_image_params": {"prompt": 1, "seed": "x"}}'},
        {"parameters": '{"prompt": ["x"], "resolution": "(a, b)"}', "fooocus_scheme": "fooocus"},
        {"invokeai_metadata": "[1, 2]"},
        {"invokeai_metadata": '{"positive_prompt": "x", "seed": "NaN", "width": 1e999}'},
        {"prompt": '{"1": {"inputs": {"positive": ["9", 0], "negative": 5}}}'},
        {"prompt": "[]", "workflow": '{"nodes": [1, {"id": 2, "inputs": [5]}], "links": [7]}'},
        {"parameters": "just one line"},
        {"parameters": "p\nSteps: 1e999, CFG scale: nan, Seed: 99999999999999999999999, Size: 1x1"},
    ],
)
def test_broken_metadata_never_raises_and_is_shown_raw(texts: dict[str, str]) -> None:
    info = read_png_info(pillow_png(texts))
    assert info.chunks == texts
    assert all(f"--- {key} ---" in shown(pillow_png(texts))[3] for key in texts)


def test_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(NotAnImageError):
        read_png_info(b"hello")
    path = tmp_path / "notes.png"
    path.write_text("not a png")
    with pytest.raises(NotAnImageError):
        read_png_info(path)
    refused = show_png(None, str(path))
    assert refused[1] == "⚠️ This file is not an image that can be read." and refused[4] is None
    assert show_png(None, None) == (None, "", "", "", None)
    gone = show_png(None, str(tmp_path / "gone.png"))
    assert gone[4] is None and "can be read" in gone[1]


def test_truncated_png_keeps_what_it_has(tmp_path: Path) -> None:
    data = pillow_png({"parameters": A1111_TEXT})
    info = read_png_info(data[: data.index(b"IDAT")])
    assert info.source == "AUTOMATIC1111" and info.metadata is not None
