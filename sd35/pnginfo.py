"""PNG Info: what an image's text chunks say, whichever tool wrote them, and what fits our form.

:func:`read_png_info` never raises because of what a file's chunks contain: unknown or broken
metadata is still shown raw, with a note saying what could not be used. Readers, in the order
tried: our own ``sd35`` JSON; SwarmUI's ``sui_image_params`` JSON and Fooocus's own JSON scheme
(both in ``parameters``); InvokeAI's ``invokeai_metadata``; A1111 ``parameters`` text (also what
Fooocus writes in its A1111 scheme, and our own text); ComfyUI's ``prompt`` graph, else its
``workflow``. docs/metadata.md describes each tool's format.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sd35.errors import InvalidRequestError
from sd35.metadata import (
    JSON_KEY,
    PARAMETERS_KEY,
    RAW_NEGATIVE,
    RAW_PROMPT,
    ImageMetadata,
    a1111_pairs,
    metadata_from_a1111,
    metadata_from_fooocus_json,
    parse_a1111,
    read_texts,
)

NO_METADATA = "This PNG has no generation metadata."
UNKNOWN = "No generation parameters this studio can read; the text chunks are shown as stored."

#: Our form's fields, for the note on what a foreign file has that the form cannot take.
_FORM_FIELDS = {"prompt", "negative prompt", "steps", "cfg scale", "seed", "size", "model"}


@dataclass(frozen=True)
class PngInfo:
    """What PNG Info shows for one file.

    ``chunks``: every text chunk as stored (tEXt, zTXt, iTXt; for JPEG/WebP the A1111 EXIF
    comment, as ``parameters``). ``fields``: the parameters parsed, in the writer's order,
    including those our form does not use. ``source``: the tool that wrote them ("sd35",
    "AUTOMATIC1111", "Fooocus", "SwarmUI", "ComfyUI", "InvokeAI"; "" when none).
    ``metadata``: the fields mapped onto our form, or None. ``note``: what could not be used.
    """

    chunks: dict[str, str] = field(default_factory=dict)
    fields: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""
    metadata: ImageMetadata | None = None
    note: str = ""


Reader = Callable[[dict[str, str]], "PngInfo | None"]


def read_png_info(path: Path | str | bytes) -> PngInfo:
    """PNG Info for an image file (or its bytes).

    Raises :class:`NotAnImageError` if it is not an image, ``OSError`` if it cannot be read;
    never anything because of what its text chunks say.
    """
    chunks = read_texts(path if isinstance(path, bytes) else Path(path))
    return info_from_chunks(chunks)


def info_from_chunks(chunks: dict[str, str]) -> PngInfo:
    """PngInfo for an image's text chunks (see :func:`read_png_info`)."""
    if not chunks:
        return PngInfo(chunks={}, note=NO_METADATA)
    for reader in _READERS:
        try:
            found = reader(chunks)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
            found = None  # a damaged chunk of one format: try the next reader
        if found is not None:
            return PngInfo(
                chunks=dict(chunks),
                fields=found.fields,
                source=found.source,
                metadata=found.metadata,
                note=" ".join(n for n in (found.note, _validity_note(found.metadata)) if n),
            )
    return PngInfo(chunks=dict(chunks), note=UNKNOWN)


# --- readers --------------------------------------------------------------------------------------


def _ours(chunks: dict[str, str]) -> PngInfo | None:
    text = chunks.get(JSON_KEY)
    if not text:
        return None
    meta = ImageMetadata.from_json(text)
    fields = [
        ("Prompt", meta.prompt),
        ("Negative prompt", meta.negative_prompt),
        ("Steps", str(meta.num_inference_steps)),
        ("CFG scale", f"{meta.guidance_scale:g}"),
        ("Seed", str(meta.seed)),
        ("Size", f"{meta.width}x{meta.height}"),
        ("Model", meta.model),
        ("Space", meta.space),
        ("Created", meta.created_at),
    ]
    if meta.elapsed is not None:
        fields.append(("Time", f"{meta.elapsed:.1f} s"))
    return PngInfo(fields=[(k, v) for k, v in fields if v != ""], source="sd35", metadata=meta)


def _parameters_json(chunks: dict[str, str]) -> Any:
    """``parameters`` as JSON, or None when it is not (A1111 text may start with "{" too)."""
    text = chunks.get(PARAMETERS_KEY, "").strip()
    if not text.startswith("{"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _swarmui(chunks: dict[str, str]) -> PngInfo | None:
    data = _parameters_json(chunks)
    if not isinstance(data, dict) or not isinstance(data.get("sui_image_params"), dict):
        return None
    params: dict[str, Any] = data["sui_image_params"]
    fields = [(key, _text(value)) for key, value in params.items()]
    extra = data.get("sui_extra_data")
    if isinstance(extra, dict):
        fields += [(key, _text(value)) for key, value in extra.items()]
    prompt = params.get("prompt")
    if not isinstance(prompt, str):
        return PngInfo(fields=fields, source="SwarmUI", note="This SwarmUI file has no prompt.")
    meta = _mapped(
        prompt=prompt,
        negative=params.get("negativeprompt"),
        steps=params.get("steps"),
        cfg=params.get("cfgscale"),
        seed=params.get("seed"),
        width=params.get("width"),
        height=params.get("height"),
        model=params.get("model"),
        extra={"SwarmUI": params},
    )
    unused = [k for k in params if k not in _SWARM_MAPPED]
    return PngInfo(fields=fields, source="SwarmUI", metadata=meta, note=_unused_note(unused))


_SWARM_MAPPED = {
    "prompt",
    "negativeprompt",
    "steps",
    "cfgscale",
    "seed",
    "width",
    "height",
    "model",
    "aspectratio",
    "swarm_version",
    "date",
    "generation_time",
}


def _fooocus(chunks: dict[str, str]) -> PngInfo | None:
    data = _parameters_json(chunks)
    if not isinstance(data, dict):
        return None
    if chunks.get("fooocus_scheme") != "fooocus" and not {"prompt", "resolution"} <= set(data):
        return None
    fields = [(key, _text(value)) for key, value in data.items()]
    meta = metadata_from_fooocus_json(chunks[PARAMETERS_KEY])
    notes = []
    styles = data.get("styles")
    if isinstance(styles, str) and styles.strip("[] ") != "":
        notes.append(f"Fooocus styles {styles} were applied to this prompt; this Space has none.")
    used = {"prompt", "negative_prompt", "steps", "guidance_scale", "seed", "resolution"}
    used |= {"base_model", "version", "full_prompt", "full_negative_prompt", "styles"}
    notes.append(_unused_note([k for k in data if k not in used]))
    return PngInfo(
        fields=fields, source="Fooocus", metadata=meta, note=" ".join(n for n in notes if n)
    )


def _invokeai(chunks: dict[str, str]) -> PngInfo | None:
    text = chunks.get("invokeai_metadata")
    if not text:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        return None
    fields = [(key, _text(value)) for key, value in data.items()]
    prompt = data.get("positive_prompt")
    if not isinstance(prompt, str):
        return PngInfo(fields=fields, source="InvokeAI", note="This InvokeAI file has no prompt.")
    model = data.get("model")
    meta = _mapped(
        prompt=prompt,
        negative=data.get("negative_prompt"),
        steps=data.get("steps"),
        cfg=data.get("cfg_scale"),
        seed=data.get("seed"),
        width=data.get("width"),
        height=data.get("height"),
        model=model.get("name") if isinstance(model, dict) else model,
        extra={"InvokeAI": data},
    )
    used = {"positive_prompt", "negative_prompt", "steps", "cfg_scale", "seed", "width"}
    used |= {"height", "model", "generation_mode", "app_version"}
    return PngInfo(
        fields=fields,
        source="InvokeAI",
        metadata=meta,
        note=_unused_note([k for k in data if k not in used and data[k] not in (None, [], "")]),
    )


def _a1111(chunks: dict[str, str]) -> PngInfo | None:
    text = chunks.get(PARAMETERS_KEY)
    if not text or isinstance(_parameters_json(chunks), dict):
        return None
    parsed = parse_a1111(text)
    pairs = a1111_pairs(text)
    keys = {key for key, _ in pairs}
    if "Space" in keys:
        source = "sd35"
    elif chunks.get("fooocus_scheme") == "a1111" or RAW_PROMPT in keys:
        source = "Fooocus"
    else:
        source = "AUTOMATIC1111"
    fields = [("Prompt", parsed["prompt"]), ("Negative prompt", parsed["negative_prompt"])]
    fields += pairs
    meta = metadata_from_a1111(text)
    if meta is None:
        note = "This text has no line of parameters (Steps, CFG scale, Seed, …) to use."
        return PngInfo(fields=fields, source=source, note=note)
    unused = [k for k in keys if k.lower() not in _FORM_FIELDS and k not in _A1111_IGNORED]
    return PngInfo(fields=fields, source=source, metadata=meta, note=_unused_note(unused))


_A1111_IGNORED = {"Space", RAW_PROMPT, RAW_NEGATIVE, "Version", "Model hash"}


# --- ComfyUI ------------------------------------------------------------------------------------

#: Widget order of the nodes a ``workflow`` is read through (ComfyUI's nodes.py/comfy_extras).
_WIDGETS = {
    "KSampler": ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler"],
    "KSamplerAdvanced": [
        "add_noise",
        "noise_seed",
        "control_after_generate",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
    ],
    "CLIPTextEncode": ["text"],
    "CLIPTextEncodeSD3": ["clip_l", "clip_g", "t5xxl", "empty_padding"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "EmptySD3LatentImage": ["width", "height", "batch_size"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "RandomNoise": ["noise_seed", "control_after_generate"],
    "CFGGuider": ["cfg"],
    "BasicScheduler": ["scheduler", "steps", "denoise"],
    "PrimitiveNode": ["value"],
}
_TEXT_INPUTS = ("text", "t5xxl", "clip_l", "clip_g", "text_g", "text_l", "value", "string")
_MAX_DEPTH = 32


def _comfyui(chunks: dict[str, str]) -> PngInfo | None:
    graph: dict[str, dict[str, Any]] | None = None
    if chunks.get("prompt", "").lstrip().startswith("{"):
        graph = _api_graph(json.loads(chunks["prompt"]))
    if not graph and chunks.get("workflow", "").lstrip().startswith("{"):
        graph = _workflow_graph(json.loads(chunks["workflow"]))
    if not graph:
        return None
    sampler_id = _pick_sampler(graph)
    if sampler_id is None:
        note = "This ComfyUI graph has no sampler with prompts to follow; shown as stored."
        return PngInfo(source="ComfyUI", note=note)
    found = _follow_sampler(graph, sampler_id)
    fields = [(key, _text(value)) for key, value in found.items() if value is not None]
    if not isinstance(found["Prompt"], str):
        return PngInfo(fields=fields, source="ComfyUI", note="No prompt text reaches the sampler.")
    meta = _mapped(
        prompt=found["Prompt"],
        negative=found["Negative prompt"],
        steps=found["Steps"],
        cfg=found["CFG scale"],
        seed=found["Seed"],
        width=found["Width"],
        height=found["Height"],
        model=found["Model"],
        extra={"ComfyUI sampler": found["Sampler node"]},
    )
    missing = [k for k in ("Steps", "CFG scale", "Seed", "Width") if found[k] is None]
    note = f"Not found in the graph: {', '.join(missing)}." if missing else ""
    unused = [k for k in ("Sampler", "Scheduler") if found[k] is not None]
    note = " ".join(n for n in (note, _unused_note(unused)) if n)
    return PngInfo(fields=fields, source="ComfyUI", metadata=meta, note=note)


def _api_graph(data: Any) -> dict[str, dict[str, Any]]:
    """ComfyUI's API format: ``{id: {"class_type": …, "inputs": {name: value | [id, slot]}}}``."""
    if not isinstance(data, dict):
        return {}
    return {
        str(key): node
        for key, node in data.items()
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict)
    }


def _workflow_graph(data: Any) -> dict[str, dict[str, Any]]:
    """The same shape made from the UI ``workflow``: links become ``[id, slot]``, widget values
    are named for the nodes listed in ``_WIDGETS``."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return {}
    origins: dict[Any, list[Any]] = {}
    for link in data.get("links") or []:
        if isinstance(link, list) and len(link) >= 3:
            origins[link[0]] = [str(link[1]), link[2]]
    graph: dict[str, dict[str, Any]] = {}
    for node in data["nodes"]:
        if not isinstance(node, dict) or "id" not in node:
            continue
        kind = str(node.get("type", ""))
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        if isinstance(values, list):
            inputs.update(zip(_WIDGETS.get(kind, []), values, strict=False))
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and slot.get("link") in origins:
                inputs[str(slot.get("name"))] = origins[slot["link"]]
        graph[str(node["id"])] = {"class_type": kind, "inputs": inputs}
    return graph


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _pick_sampler(graph: dict[str, dict[str, Any]]) -> str | None:
    """The first sampler that starts from an empty latent (the first pass), else any sampler."""
    samplers = [
        key
        for key, node in graph.items()
        if "latent_image" in node["inputs"]  # not ControlNet & co., which take prompts too
        and ({"positive", "negative"} <= set(node["inputs"]) or "guider" in node["inputs"])
    ]
    for key in samplers:
        latent = _node(graph, graph[key]["inputs"].get("latent_image"))
        if latent is not None and {"width", "height"} <= set(latent["inputs"]):
            return key
    return samplers[0] if samplers else None


def _node(graph: dict[str, dict[str, Any]], link: Any) -> dict[str, Any] | None:
    return graph.get(str(link[0])) if _is_link(link) else None


def _scalar(graph: dict[str, dict[str, Any]], value: Any, names: tuple[str, ...]) -> Any:
    """A widget value, following links to primitive nodes (by the given input names)."""
    for _ in range(_MAX_DEPTH):
        if not _is_link(value):
            return value
        node = _node(graph, value)
        if node is None:
            return None
        inputs = node["inputs"]
        value = next((inputs[n] for n in names if n in inputs), None)
    return None


def _text_of(
    graph: dict[str, dict[str, Any]], link: Any, seen: frozenset[str] = frozenset()
) -> str | None:
    """The prompt text behind a conditioning input: the text-encode node's own text, through
    conditioning nodes (combine, set area, ControlNet, …); ZeroOut is the empty text."""
    node = _node(graph, link)
    if node is None or str(link[0]) in seen or len(seen) > _MAX_DEPTH:
        return None
    seen = seen | {str(link[0])}
    if node.get("class_type") == "ConditioningZeroOut":
        return ""
    inputs = node["inputs"]
    for name in _TEXT_INPUTS:
        if name in inputs:
            text = _scalar(graph, inputs[name], _TEXT_INPUTS)
            if isinstance(text, str):
                return text
    if {"positive", "negative"} <= set(inputs):  # ControlNet & co.: outputs 0 and 1 are those
        return _text_of(graph, inputs["negative" if link[1] == 1 else "positive"], seen)
    for name, value in inputs.items():
        if _is_link(value) and "conditioning" in name:
            text = _text_of(graph, value, seen)
            if text is not None:
                return text
    return None


def _follow_sampler(graph: dict[str, dict[str, Any]], sampler_id: str) -> dict[str, Any]:
    inputs = graph[sampler_id]["inputs"]
    guider = _node(graph, inputs.get("guider")) or {"inputs": {}}
    noise = _node(graph, inputs.get("noise")) or {"inputs": {}}
    sigmas = _node(graph, inputs.get("sigmas")) or {"inputs": {}}
    latent = _node(graph, inputs.get("latent_image")) or {"inputs": {}}
    conditioning = inputs if "positive" in inputs else guider["inputs"]
    model = _checkpoint(graph, inputs.get("model") or guider["inputs"].get("model"))

    def pick(*places: tuple[dict[str, Any], str]) -> Any:
        for place, name in places:
            if name in place["inputs"]:
                return _scalar(graph, place["inputs"][name], ("value", name, "seed", "noise_seed"))
        return None

    node = graph[sampler_id]
    return {
        "Prompt": _text_of(graph, conditioning.get("positive")),
        "Negative prompt": _text_of(graph, conditioning.get("negative")),
        "Steps": pick((node, "steps"), (sigmas, "steps")),
        "CFG scale": pick((node, "cfg"), (guider, "cfg")),
        "Seed": pick((node, "seed"), (node, "noise_seed"), (noise, "noise_seed")),
        "Width": pick((latent, "width")),
        "Height": pick((latent, "height")),
        "Sampler": pick((node, "sampler_name")),
        "Scheduler": pick((node, "scheduler"), (sigmas, "scheduler")),
        "Model": model,
        "Sampler node": f"{sampler_id} ({node.get('class_type', '?')})",
    }


def _checkpoint(graph: dict[str, dict[str, Any]], link: Any) -> str | None:
    """The checkpoint's file name behind a model input (through LoRA and patch nodes)."""
    for _ in range(_MAX_DEPTH):
        node = _node(graph, link)
        if node is None:
            return None
        for name in ("ckpt_name", "unet_name", "model_name"):
            if isinstance(node["inputs"].get(name), str):
                return node["inputs"][name]
        link = node["inputs"].get("model")
    return None


# --- helpers --------------------------------------------------------------------------------------


def _mapped(
    *,
    prompt: str,
    negative: Any,
    steps: Any,
    cfg: Any,
    seed: Any,
    width: Any,
    height: Any,
    model: Any,
    extra: dict[str, Any],
) -> ImageMetadata:
    """ImageMetadata from a foreign file's values; what is missing or not a number keeps our
    default (the note or the form says so)."""
    defaults = ImageMetadata(prompt="")
    return ImageMetadata(
        prompt=prompt,
        negative_prompt=negative if isinstance(negative, str) else "",
        seed=_int(seed, defaults.seed),
        randomize_seed=False,
        width=_int(width, defaults.width),
        height=_int(height, defaults.height),
        guidance_scale=_float(cfg, defaults.guidance_scale),
        num_inference_steps=_int(steps, defaults.num_inference_steps),
        model=model if isinstance(model, str) else "",
        space="",
        created_at="",
        extra=extra,
    )


def _int(value: Any, default: int) -> int:
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        if not isinstance(value, bool):
            number = float(value) if not isinstance(value, int) else value
            if float(number).is_integer():
                return int(number)
    return default


def _float(value: Any, default: float) -> float:
    with contextlib.suppress(TypeError, ValueError):
        if not isinstance(value, bool) and math.isfinite(float(value)):
            return float(value)
    return default


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _unused_note(keys: list[str]) -> str:
    keys = [k for k in keys if k]
    if not keys:
        return ""
    return f"Not used by this Space: {', '.join(keys)}."


def _validity_note(meta: ImageMetadata | None) -> str:
    """Say when a foreign value falls outside what the Space accepts (default bounds)."""
    if meta is None:
        return ""
    try:
        meta.to_request().validate()
    except InvalidRequestError as error:
        return f"The Space will not take these as they are: {error.message}"
    return ""


_READERS: list[Reader] = [_ours, _swarmui, _fooocus, _invokeai, _a1111, _comfyui]
