"""The History panel: the gallery of stored images, a page at a time, with search, star,
"Use these settings", download, delete and a page as ZIP."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sd35.backends.panel import restore_choice
from sd35.panels import wording
from sd35.panels.common import image_value, user_of
from sd35.panels.form import FormValues, fill_form
from sd35.studio import caption, details_markdown, thumbnail_for

#: Thumbnails per gallery page. Each is a request when the page opens, and the first page
#: is on the critical path of opening the studio (see BENCHMARKS.md).
PAGE_SIZE = 12
PROMPT_HISTORY = 30


@dataclass
class HistoryPanel:
    search: gr.Textbox
    starred_only: gr.Checkbox
    newer: gr.Button
    page_label: gr.Markdown
    older: gr.Button
    gallery: gr.Gallery
    #: "Click an image…": stands where the selection will be, until the first selection.
    hint: gr.Markdown
    #: The selected image, its parameters and buttons: shown from the first selection on.
    selection: gr.Row
    selected_image: gr.Image
    details: gr.Markdown
    use_settings: gr.Button
    star: gr.Button
    download: gr.DownloadButton
    delete: gr.Button
    confirm_row: gr.Row
    confirm_delete: gr.Button
    cancel_delete: gr.Button
    zip_button: gr.Button
    zip_file: gr.File
    page_ids: gr.State
    page_number: gr.State
    selected_id: gr.State

    def listing(self) -> list[Any]:
        """What every page load answers: gallery, ids, label."""
        return [self.gallery, self.page_ids, self.page_label]

    def paging(self) -> list[Any]:
        return [self.page_number, self.search, self.starred_only]


def build_history() -> HistoryPanel:
    """The History tab's content (call inside a Tab)."""
    page_ids, page_number, selected_id = gr.State([]), gr.State(0), gr.State(None)
    with gr.Row(equal_height=True):
        search = gr.Textbox(
            label="Search prompts", scale=3, min_width=140, elem_id="search", lines=1
        )
        starred_only = gr.Checkbox(label="★ Starred only", value=False, min_width=90)
    with gr.Row(equal_height=True, elem_id="history-paging"):
        newer = gr.Button("◀ Newer", size="sm", min_width=60)
        page_label = gr.Markdown("", elem_id="page-label")
        older = gr.Button("Older ▶", size="sm", min_width=60)
    gallery = gr.Gallery(
        label="History",
        show_label=False,
        format="png",
        columns=4,
        height=330,
        object_fit="contain",  # letterboxed: a 16:9 image is not cropped to a square
        fit_columns=False,  # one image keeps its cell instead of stretching into a banner
        allow_preview=False,
        elem_id="gallery",
    )
    hint = gr.Markdown(
        "Click an image to see it large, with its parameters.", elem_id="history-hint"
    )
    # The selected image and what acts on it appear with the first selection: not mounted
    # before, so the page (and its load event) has fewer components to start.
    with gr.Row(visible=False) as selection:
        with gr.Column(scale=3, min_width=160):
            selected_image = gr.Image(
                label="Selected",
                format="png",
                type="filepath",
                interactive=False,
                height=220,
                elem_id="selected-image",
            )
        with gr.Column(scale=4, min_width=160):
            details = gr.Markdown("", elem_id="details")
            use_settings = gr.Button("Use these settings", size="sm", elem_id="use-settings")
            with gr.Row():
                star = gr.Button(
                    wording.star_label(False), size="sm", elem_id="star-button", min_width=80
                )
                download = gr.DownloadButton(
                    "Download", size="sm", elem_id="download", min_width=80
                )
                delete = gr.Button("Delete…", size="sm", variant="stop", min_width=80)
            with gr.Row(visible=False) as confirm_row:
                confirm_delete = gr.Button("Yes, delete it", variant="stop", size="sm")
                cancel_delete = gr.Button("Keep it", size="sm")
    zip_button = gr.Button("Download this page as ZIP", size="sm")
    zip_file = gr.File(label="ZIP", visible=False)
    return HistoryPanel(
        search=search,
        starred_only=starred_only,
        newer=newer,
        page_label=page_label,
        older=older,
        gallery=gallery,
        hint=hint,
        selection=selection,
        selected_image=selected_image,
        details=details,
        use_settings=use_settings,
        star=star,
        download=download,
        delete=delete,
        confirm_row=confirm_row,
        confirm_delete=confirm_delete,
        cancel_delete=cancel_delete,
        zip_button=zip_button,
        zip_file=zip_file,
        page_ids=page_ids,
        page_number=page_number,
        selected_id=selected_id,
    )


# --- handlers -----------------------------------------------------------------------------


def load_page(
    studio: Any, search: str, only_starred: bool, number: int, request: gr.Request
) -> tuple[list[tuple[str, str]], list[str], str]:
    """One page of thumbnails (starred ones marked), their ids, and "Page i of n · N images"."""
    store = studio.store
    result = studio.gallery(
        user_of(request),
        search=search or None,
        starred=True if only_starred else None,
        offset=number * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    items = [
        (
            image_value(studio, thumbnail_for(store, item)),
            wording.starred_caption(caption(item), item.starred),
        )
        for item in result.items
    ]
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    noun = "image" if result.total == 1 else "images"
    label = f"Page {number + 1} of {pages} · {result.total} {noun}"
    return items, [item.id for item in result.items], label


def go_page(
    studio: Any, delta: int, number: int, search: str, only_starred: bool, request: gr.Request
) -> tuple[Any, ...]:
    target = max(0, number + delta)
    items, ids, label = load_page(studio, search, only_starred, target, request)
    if not ids and target > 0:  # past the end: stay where we are
        target = number
        items, ids, label = load_page(studio, search, only_starred, target, request)
    return items, ids, label, target


def newer_page(studio: Any, number: int, search: str, only_starred: bool, request: gr.Request):
    return go_page(studio, -1, number, search, only_starred, request)


def older_page(studio: Any, number: int, search: str, only_starred: bool, request: gr.Request):
    return go_page(studio, 1, number, search, only_starred, request)


def first_page(studio: Any, search: str, only_starred: bool, request: gr.Request):
    return (*load_page(studio, search, only_starred, 0, request), 0)


async def after_save(studio: Any, search: str, only_starred: bool, request: gr.Request):
    """A new image was stored: the first page again, and the prompt history."""
    items, ids, label = await asyncio.to_thread(load_page, studio, search, only_starred, 0, request)
    prompts = await asyncio.to_thread(
        studio.store.prompt_history, limit=PROMPT_HISTORY, user=user_of(request)
    )
    return items, ids, label, 0, gr.update(choices=prompts)


def select(studio: Any, ids: list[str], event: gr.SelectData, request: gr.Request):
    """A thumbnail clicked: the image large, its parameters, download, Star or Unstar."""
    if event.index is None or event.index >= len(ids):
        return gr.skip(), gr.skip(), gr.skip(), None, gr.skip(), gr.skip(), gr.skip()
    shown, hidden = gr.update(visible=True), gr.update(visible=False)  # the panel, the hint
    item = studio.store.get(ids[event.index], user=user_of(request))
    if item is None:
        gone = "This image no longer exists."
        return None, gone, None, None, wording.star_label(False), shown, hidden
    path = image_value(studio, item.path)
    star = wording.star_label(item.starred)
    return path, details_markdown(item.meta), path, item.id, star, shown, hidden


def use_settings(
    studio: Any, image_id: str | None, prompt: str, negative_prompt: str, width: float,
    height: float, guidance_scale: float, num_inference_steps: float, seed: float | None,
    randomize_seed: bool, request: gr.Request,
) -> list[Any]:  # fmt: skip
    """The selected image's settings into the form, and a note saying what changed."""
    item = studio.store.get(image_id, user=user_of(request)) if image_id else None
    current = FormValues(
        prompt, negative_prompt, width, height, guidance_scale, num_inference_steps, seed,
        randomize_seed,
    )  # fmt: skip
    filled = fill_form("the selected image", item.meta if item else None, current)
    backend = restore_choice(studio, item.meta.backend) if item is not None else gr.skip()
    return [*filled, backend]


def toggle_star(
    studio: Any, image_id: str | None, number: int, search: str, only_starred: bool,
    request: gr.Request,
) -> tuple[Any, ...]:  # fmt: skip
    user = user_of(request)
    item = studio.store.get(image_id, user=user) if image_id else None
    starred = False
    if item is not None:
        starred = not item.starred
        studio.store.set_starred(item.id, starred, user=user)
    return (*load_page(studio, search, only_starred, number, request), wording.star_label(starred))


def delete_selected(
    studio: Any, image_id: str | None, number: int, search: str, only_starred: bool,
    request: gr.Request,
) -> tuple[Any, ...]:  # fmt: skip
    if image_id:
        studio.store.delete(image_id, user=user_of(request))
    return (
        *load_page(studio, search, only_starred, number, request),
        None,
        "Deleted.",
        None,
        None,
        gr.update(visible=False),
    )


def zip_page(studio: Any, ids: list[str], request: gr.Request) -> Any:
    if not ids:
        return gr.update(visible=False)
    path = studio.store.write_zip(ids, user=user_of(request))
    return gr.update(value=str(path), visible=True)


def wire_history(panel: HistoryPanel, studio: Any) -> None:
    """The History tab's own events (those that reach the form are wired in ``sd35.ui``)."""
    from sd35.panels.common import bind

    private: dict[str, Any] = {"api_visibility": "private"}
    pages = [*panel.listing(), panel.page_number]
    panel.newer.click(bind(newer_page, studio), panel.paging(), pages, **private)
    panel.older.click(bind(older_page, studio), panel.paging(), pages, **private)
    for trigger in (panel.search.submit, panel.starred_only.input):
        trigger(bind(first_page, studio), [panel.search, panel.starred_only], pages, **private)
    panel.gallery.select(
        bind(select, studio),
        [panel.page_ids],
        [
            panel.selected_image,
            panel.details,
            panel.download,
            panel.selected_id,
            panel.star,
            panel.selection,
            panel.hint,
        ],
        **private,
    )
    panel.star.click(
        bind(toggle_star, studio),
        [panel.selected_id, *panel.paging()],
        [*panel.listing(), panel.star],
        **private,
    )
    for button, shown in ((panel.delete, True), (panel.cancel_delete, False)):
        button.click(
            lambda shown=shown: gr.update(visible=shown),
            None,
            panel.confirm_row,
            queue=False,
            **private,
        )
    panel.confirm_delete.click(
        bind(delete_selected, studio),
        [panel.selected_id, *panel.paging()],
        [
            *panel.listing(),
            panel.selected_image,
            panel.details,
            panel.download,
            panel.selected_id,
            panel.confirm_row,
        ],
        **private,
    )
    panel.zip_button.click(bind(zip_page, studio), [panel.page_ids], panel.zip_file, **private)
