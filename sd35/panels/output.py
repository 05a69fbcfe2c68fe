"""The output panel: the current image, the run's status line, and the batch as a strip of
images each with its seed (click one to see it large)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sd35.panels import wording
from sd35.panels.common import image_value, user_of

#: The strip shows at most this many images per row.
STRIP_COLUMNS = 4


@dataclass
class OutputPanel:
    column: gr.Column
    image: gr.Image
    status: gr.Markdown
    info: gr.Markdown
    strip: gr.Gallery


def build_output() -> OutputPanel:
    """The output column (call inside a Row)."""
    with gr.Column(scale=5, min_width=300, elem_id="output-column") as column:
        status = gr.Markdown("", elem_id="run-status")
        image = gr.Image(
            label="Image",
            format="png",
            type="filepath",
            interactive=False,
            elem_id="output-image",
            height=540,
        )
        info = gr.Markdown("", elem_id="result-info")
        strip = gr.Gallery(
            label="This batch (click one to see it large)",
            show_label=False,
            format="png",
            columns=STRIP_COLUMNS,
            height="auto",
            object_fit="contain",
            allow_preview=False,
            visible=False,
            elem_id="batch-strip",
        )
    return OutputPanel(column=column, image=image, status=status, info=info, strip=strip)


# --- handlers -----------------------------------------------------------------------------


def show_batch(studio: Any, ids: list[str], batch: float, request: gr.Request) -> Any:
    """The strip of this run's images, each captioned with its seed (shown for batches)."""
    user = user_of(request)
    items = []
    for image_id in ids or []:
        item = studio.store.get(image_id, user=user)
        if item is not None:
            items.append((image_value(studio, item.path), wording.seed_caption(item.meta.seed)))
    return gr.update(value=items, visible=len(items) > 1 or (batch or 1) > 1)


def pick_from_batch(
    studio: Any, ids: list[str], event: gr.SelectData, request: gr.Request
) -> tuple[Any, Any]:
    """One image of the strip clicked: it becomes the large image, with its own line."""
    if event.index is None or not ids or event.index >= len(ids):
        return gr.skip(), gr.skip()
    item = studio.store.get(ids[event.index], user=user_of(request))
    if item is None:
        return gr.skip(), "This image no longer exists."
    meta = item.meta
    line = (
        f"Seed {meta.seed} · {meta.width}×{meta.height} · {meta.num_inference_steps} steps · "
        f"CFG {meta.guidance_scale:g}"
    )
    return image_value(studio, item.path), line
