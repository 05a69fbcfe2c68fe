"""The PNG Info panel: drop an image, see the raw text of every text chunk exactly as stored,
the parsed fields (also those this studio does not use, such as Sampler or Model hash), and a
preview; "Send to form" copies the settings that map to our form.

The readers (ours, AUTOMATIC1111, Fooocus, SwarmUI, ComfyUI, InvokeAI) are ``sd35.pnginfo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sd35.metadata import ImageMetadata
from sd35.panels.form import FormValues, fill_form
from sd35.pnginfo import read_png_info


@dataclass
class PngInfoPanel:
    file: gr.File
    preview: gr.Image
    summary: gr.Markdown
    fields: gr.Markdown
    raw: gr.Code
    send_to_form: gr.Button
    meta: gr.State


def build_pnginfo() -> PngInfoPanel:
    """The PNG Info tab's content (call inside a Tab)."""
    meta = gr.State(None)
    with gr.Row():
        with gr.Column(scale=3, min_width=160):
            file = gr.File(
                label="Drop a PNG (ours, AUTOMATIC1111's, …)",
                type="filepath",
                height=120,
                elem_id="png-file",
            )
            preview = gr.Image(
                label="Preview",
                type="filepath",
                interactive=False,
                height=200,
                elem_id="png-preview",
            )
        with gr.Column(scale=4, min_width=160):
            summary = gr.Markdown("", elem_id="png-summary")
            send_to_form = gr.Button("Send to form", size="sm", elem_id="send-to-form")
            fields = gr.Markdown("", elem_id="png-fields")
    raw = gr.Code(
        label="Text chunks, exactly as stored",
        language=None,
        interactive=False,
        lines=6,
        max_lines=14,
        wrap_lines=True,
        elem_id="png-raw",
    )
    return PngInfoPanel(file, preview, summary, fields, raw, send_to_form, meta)


# --- handlers -----------------------------------------------------------------------------


def show_png(studio: Any, path: str | None) -> tuple[Any, ...]:
    """A file dropped: preview, what wrote it, its fields, the raw chunks."""
    if not path:
        return None, "", "", "", None
    try:
        info = read_png_info(path)
    except (OSError, ValueError):  # not an image at all: say so instead of failing
        return None, "⚠️ This file is not an image that can be read.", "", "", None
    source = f"Written by **{info.source}**." if info.source else ""
    summary = " ".join(part for part in (source, info.note) if part)
    rows = "\n".join(f"- **{_md(key)}:** {_md(value)}" for key, value in info.fields)
    raw = "\n\n".join(f"--- {key} ---\n{value}" for key, value in info.chunks.items())
    return path, summary, rows, raw, info.metadata


def send_to_form(
    studio: Any, meta: ImageMetadata | None, prompt: str, negative_prompt: str, width: float,
    height: float, guidance_scale: float, num_inference_steps: float, seed: float | None,
    randomize_seed: bool,
) -> list[Any]:  # fmt: skip
    current = FormValues(
        prompt, negative_prompt, width, height, guidance_scale, num_inference_steps, seed,
        randomize_seed,
    )  # fmt: skip
    return fill_form("the PNG", meta, current)


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("<", "&lt;")


def wire_pnginfo(panel: PngInfoPanel, studio: Any) -> None:
    from sd35.panels.common import bind

    panel.file.change(
        bind(show_png, studio),
        panel.file,
        [panel.preview, panel.summary, panel.fields, panel.raw, panel.meta],
        api_visibility="private",
    )
