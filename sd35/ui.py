"""The studio page: a thin Gradio Blocks layer over ``sd35.studio``.

Every callback here only moves values between components and the studio's functions; the
logic (requests, saving, wording) lives in modules that need no browser.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from sd35 import pnginfo
from sd35.backends.panel import add_backend_panel, pinned_backend, restore_choice, schema_for
from sd35.errors import SD35Error
from sd35.form_check import form_validator
from sd35.metadata import ImageMetadata
from sd35.page_files import PageFiles
from sd35.params import (
    MAX_PROMPT_CHARS,
    GenerationRequest,
    aspect_ratio_presets,
    batch_requests,
    count_value,
)
from sd35.queue_panel import build_queue_panel, generation_events, stop_handler
from sd35.space_client import Preview, Progress, Result
from sd35.studio import (
    Saved,
    Studio,
    caption,
    details_markdown,
    error_line,
    form_values,
    progress_line,
    request_from_form,
    result_line,
    status_line,
    thumbnail_for,
)

MAX_BATCH = 8
#: Seconds between two step-progress updates sent to the page: each costs Gradio a few ms of
#: CPU (process_api, SSE), and 4 a second read as smoothly as 10 (BENCHMARKS.md).
PROGRESS_INTERVAL = 0.25
#: Thumbnails per gallery page: two rows. Each is a request when the page opens, and the
#: first page is on the critical path of opening the studio (see BENCHMARKS.md).
PAGE_SIZE = 12
EXAMPLES = [
    "A capybara wearing a suit holding a sign that reads Hello World",
    "A serene mountain lake at sunrise, mist over the water, photorealistic",
    "An astronaut riding a horse on Mars, oil painting in the style of Turner",
    "A cosy reading nook with a cat asleep on a pile of books, warm light",
]

#: Ctrl/Cmd+Enter in the page generates (Gradio has no such binding for multi-line boxes),
#: and a finished image plays a short tone and raises a notification when the tab is hidden.
HEAD = """
<script>
document.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    const button = document.querySelector('#generate-button');
    if (button && !button.disabled) { event.preventDefault(); button.click(); }
  }
});
// When an image finishes while the tab is in the background: a short tone. (The notification
// comes when the queue runs empty: see sd35/queue_panel.py.)
(() => {
  let last = '';
  const chime = () => {
    try {
      const audio = new AudioContext(), tone = audio.createOscillator(), gain = audio.createGain();
      tone.frequency.value = 880; gain.gain.value = 0.05;
      tone.connect(gain); gain.connect(audio.destination);
      tone.start(); tone.stop(audio.currentTime + 0.15);
    } catch (error) { /* no audio: the notification is enough */ }
  };
  setInterval(() => {
    const status = document.querySelector('#run-status');
    const text = status ? status.innerText : '';
    if (text === last) return;
    last = text;
    if (!text.includes('Done') || !document.hidden) return;
    chime();
  }, 500);
  document.addEventListener('click', () => {
    if ('Notification' in window && Notification.permission === 'default') {
      Notification.requestPermission();
    }
  }, { once: true });
})();
</script>
"""

CSS = """
#run-status { min-height: 2.5em; }
#result-info { color: var(--body-text-color-subdued); font-size: 0.9em; }
"""


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def generate_inputs(request: GenerationRequest, batch: int = 1) -> tuple[Any, ...]:
    """The inputs of the page's ``/generate`` endpoint for ``request``, in order: what a
    ``gradio_client`` caller passes to ``predict(..., api_name="/generate")``. It answers
    ``(image, status, info)``."""
    return (
        request.prompt,
        request.negative_prompt,
        request.width,
        request.height,
        request.guidance_scale,
        request.num_inference_steps,
        request.seed,
        request.randomize_seed,
        batch,
    )


class _RunView:
    """What the page shows for one run, sent whole with every update (see ``run``); step
    progress is sent at most every ``PROGRESS_INTERVAL`` seconds."""

    def __init__(self) -> None:
        self.image: Any = gr.skip()  # the last image stays until the first frame arrives
        self.status = ""
        self.info = ""
        self.seed: Any = gr.skip()
        self.saved: Any = gr.skip()
        self._progress_at = 0.0

    def due(self, event: object) -> bool:
        """False for step progress that comes too soon after the last one shown."""
        if not isinstance(event, Progress):
            return True
        now = time.monotonic()
        if now - self._progress_at < PROGRESS_INTERVAL:
            return False
        self._progress_at = now
        return True

    def show(self, **changes: Any) -> tuple[Any, ...]:
        for name, value in changes.items():
            setattr(self, name, value)
        return self.image, self.status, self.info, self.seed, self.saved


def build_ui(studio: Studio, files: PageFiles | None = None) -> gr.Blocks:
    """The whole page, wired to ``studio``; ``files`` hands stored images to Gradio without
    opening the output folder (``sd35.page_files``)."""
    files = files or PageFiles()
    schema = studio.schema()
    presets = aspect_ratio_presets(schema)

    with gr.Blocks(title="sd35 — Stable Diffusion 3.5 Large studio") as page:
        gr.Markdown("## Stable Diffusion 3.5 Large studio")
        if studio.demo:
            gr.Markdown(
                "**Demo mode:** images come from a local stand-in Space that paints test "
                "patterns, not from Stable Diffusion.",
                elem_id="demo-banner",
            )
        space_status = gr.Markdown(
            status_line(studio.status, space=studio.client.space, demo=studio.demo),
            elem_id="space-status",
        )
        last_seed = gr.State(None)
        last_saved = gr.State(None)  # id of the newest stored image: refreshes the gallery
        page_ids = gr.State([])
        page_number = gr.State(0)
        selected_id = gr.State(None)
        info_meta = gr.State(None)

        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(
                    label="Prompt (Ctrl+Enter to generate)",
                    lines=3,
                    max_length=MAX_PROMPT_CHARS,
                    placeholder="Describe the image",
                    elem_id="prompt",
                )
                history = gr.Dropdown(
                    label="Recent prompts", choices=[], value=None, elem_id="prompt-history"
                )
                negative = gr.Textbox(
                    label="Negative prompt",
                    lines=1,
                    max_length=MAX_PROMPT_CHARS,
                    elem_id="negative-prompt",
                )
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="generate-button")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop-button")
                with gr.Row():
                    ratio = gr.Radio(
                        list(presets), value="1:1", label="Aspect ratio", elem_id="aspect-ratio"
                    )
                    swap = gr.Button("⇄ Swap", size="sm", elem_id="swap-ratio")
                with gr.Row():
                    width = gr.Slider(
                        int(schema.width.minimum),
                        int(schema.width.maximum),
                        value=presets["1:1"].width,
                        step=int(schema.width.step),
                        label="Width",
                        elem_id="width",
                    )
                    height = gr.Slider(
                        int(schema.height.minimum),
                        int(schema.height.maximum),
                        value=presets["1:1"].height,
                        step=int(schema.height.step),
                        label="Height",
                        elem_id="height",
                    )
                with gr.Row():
                    guidance = gr.Slider(
                        schema.guidance_scale.minimum,
                        schema.guidance_scale.maximum,
                        value=schema.guidance_scale.default,
                        step=schema.guidance_scale.step,
                        label="Guidance scale",
                        elem_id="guidance",
                    )
                    steps = gr.Slider(
                        int(schema.num_inference_steps.minimum),
                        int(schema.num_inference_steps.maximum),
                        value=int(schema.num_inference_steps.default),
                        step=1,
                        label="Steps",
                        elem_id="steps",
                    )
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="seed")
                    randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="randomize")
                    reuse_seed = gr.Button("♻ Reuse last seed", size="sm", elem_id="reuse-seed")
                    batch = gr.Slider(1, MAX_BATCH, value=1, step=1, label="Batch count")
                backend_choice = add_backend_panel(studio, width, height, guidance, steps)
                gr.Examples(EXAMPLES, inputs=[prompt], label="Examples")
            with gr.Column(scale=3):
                output = gr.Image(
                    label="Image",
                    format="png",
                    type="filepath",
                    interactive=False,
                    elem_id="output-image",
                    height=512,
                )
                run_status = gr.Markdown("", elem_id="run-status")
                result_info = gr.Markdown("", elem_id="result-info")

        with gr.Tab("History"):
            with gr.Row():
                search = gr.Textbox(label="Search prompts", scale=3, elem_id="search")
                starred_only = gr.Checkbox(label="Starred only", value=False)
                prev_page = gr.Button("◀ Newer", size="sm")
                page_label = gr.Markdown("", elem_id="page-label")
                next_page = gr.Button("Older ▶", size="sm")
            gallery = gr.Gallery(
                label="Gallery",
                format="png",
                columns=6,
                height=420,
                object_fit="cover",
                allow_preview=False,
                elem_id="gallery",
            )
            with gr.Row():
                with gr.Column(scale=3):
                    selected_image = gr.Image(
                        label="Selected",
                        format="png",
                        type="filepath",
                        interactive=False,
                        elem_id="selected-image",
                    )
                with gr.Column(scale=2):
                    details = gr.Markdown("Select an image to see its parameters.")
                    use_settings = gr.Button("Use these settings", elem_id="use-settings")
                    star = gr.Button("☆ Star / unstar", size="sm")
                    download = gr.DownloadButton("Download original", elem_id="download")
                    delete = gr.Button("Delete…", size="sm", variant="stop")
                    with gr.Row(visible=False) as confirm_row:
                        confirm_delete = gr.Button("Yes, delete it", variant="stop", size="sm")
                        cancel_delete = gr.Button("Keep it", size="sm")
                    zip_button = gr.Button("Download this page as ZIP", size="sm")
                    zip_file = gr.File(label="ZIP", visible=False)

        with gr.Tab("Queue", elem_id="queue-tab"):
            build_queue_panel(studio, page)

        with gr.Tab("PNG Info"):
            png_file = gr.File(
                label="Drop a PNG (ours, AUTOMATIC1111, Fooocus, ComfyUI, SwarmUI, InvokeAI)",
                type="filepath",
            )
            png_text = gr.Code(label="Parameters", language=None, interactive=False)
            send_to_form = gr.Button("Send to form", elem_id="send-to-form")

        form = [prompt, negative, width, height, guidance, steps, seed, randomize]
        gallery_outputs = [gallery, page_ids, page_label]

        # -- callbacks ------------------------------------------------------------------------

        def load_page(
            search_text: str, only_starred: bool, number: int, request: gr.Request
        ) -> tuple[list[tuple[str, str]], list[str], str]:
            result = studio.store.list(
                user=_user(request),
                search=search_text or None,
                starred=True if only_starred else None,
                offset=number * PAGE_SIZE,
                limit=PAGE_SIZE,
            )
            items = [
                (files.for_page(thumbnail_for(studio.store, item)), caption(item))
                for item in result.items
            ]
            pages = max(1, math.ceil(result.total / PAGE_SIZE))
            noun = "image" if result.total == 1 else "images"
            label = f"Page {number + 1} of {pages} · {result.total} {noun}"
            return items, [item.id for item in result.items], label

        def on_load(search_text: str, only_starred: bool, request: gr.Request) -> tuple[Any, ...]:
            live = studio.schema()
            return (
                status_line(studio.status, space=studio.client.space, demo=studio.demo),
                gr.update(
                    minimum=int(live.width.minimum),
                    maximum=int(live.width.maximum),
                    step=int(live.width.step),
                ),
                gr.update(
                    minimum=int(live.height.minimum),
                    maximum=int(live.height.maximum),
                    step=int(live.height.step),
                ),
                gr.update(choices=studio.store.prompt_history(limit=30, user=_user(request))),
                *load_page(search_text, only_starred, 0, request),
            )

        page.load(
            on_load,
            [search, starred_only],
            [space_status, width, height, history, *gallery_outputs],
            show_progress="hidden",
            api_visibility="private",
        )
        timer = gr.Timer(10)
        timer.tick(
            lambda: status_line(studio.status, space=studio.client.space, demo=studio.demo),
            None,
            space_status,
            show_progress="hidden",
            queue=False,
            api_visibility="private",
        )

        async def run(
            prompt_text: str,
            negative_text: str,
            width_value: float,
            height_value: float,
            guidance_value: float,
            steps_value: float,
            seed_value: float | None,
            randomize_value: bool,
            batch_value: float,
            backend_value: str | None,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            """Generate ``batch`` images, streaming progress and previews into the page.

            Every update carries the current image and texts rather than ``gr.skip()``:
            Gradio rebuilds a skipped component's schema on every update, which cost more
            than the whole stream. The gallery is refreshed by ``last_saved`` listeners.
            """
            view = _RunView()
            try:
                base = request_from_form(
                    prompt_text,
                    negative_text,
                    width_value,
                    height_value,
                    guidance_value,
                    steps_value,
                    seed_value,
                    randomize_value,
                    schema_for(studio, backend_value),
                )
                count = count_value(
                    "batch_count", 1 if batch_value is None else batch_value, MAX_BATCH
                )
                jobs = batch_requests(base, count)
                # Through the queue (sd35.queue_panel): each image is a stored job.
                pinned = pinned_backend(studio, backend_value)
                async for index, event in generation_events(studio, jobs, request, pinned):
                    if isinstance(event, str):  # a queue line: position, or waiting for quota
                        yield view.show(status=event)
                    elif isinstance(event, Saved):
                        done = "✅ Done" if index == len(jobs) else f"✅ Image {index} done"
                        yield view.show(
                            image=files.for_page(event.image.path),
                            status=done,
                            info=result_line(event),
                            seed=event.result.seed,
                            saved=event.image.id,
                        )
                    elif isinstance(event, Result):  # shown at once; saving follows
                        yield view.show(image=str(event.path), status="💾 Saving…")
                    elif isinstance(event, Preview):
                        yield view.show(image=str(event.path))
                    elif view.due(event):
                        line = progress_line(event, image_index=index, batch=len(jobs))
                        yield view.show(status=line)
            except SD35Error as error:
                yield view.show(status=error_line(error))
                raise gr.Error(error.message, title=error.title, print_exception=False) from None

        run_event = generate.click(
            run,
            [*form, batch, backend_choice],
            [output, run_status, result_info, last_seed, last_saved],
            api_name="generate",
            # Raw values: a prompt ["x"] must be refused, not turned into "['x']".
            preprocess=False,
            # Messages beside the fields, against the bounds of the backend the job will go to.
            validator=form_validator(lambda choice=None: schema_for(studio, choice), MAX_BATCH),
            show_progress="hidden",
            concurrency_limit=studio.concurrency,
            concurrency_id="generate",
            trigger_mode="multiple",  # Generate adds to the queue while a job runs
        )

        async def after_save(search_text: str, only_starred: bool, request: gr.Request):
            items, ids, label = await asyncio.to_thread(
                load_page, search_text, only_starred, 0, request
            )
            prompts = await asyncio.to_thread(
                studio.store.prompt_history, limit=30, user=_user(request)
            )
            return items, ids, label, 0, gr.update(choices=prompts)

        last_saved.change(
            after_save,
            [search, starred_only],
            [*gallery_outputs, page_number, history],
            show_progress="hidden",
            api_visibility="private",
        )
        # The message follows the cancel, so a last progress line cannot overwrite it.
        stop.click(
            None, None, None, cancels=[run_event], queue=False, api_visibility="private"
        ).then(
            stop_handler(studio),
            None,
            run_status,
            queue=False,
            api_visibility="private",
        )

        def on_ratio(choice: str) -> tuple[int, int]:
            size = aspect_ratio_presets(studio.schema()).get(choice) or presets["1:1"]
            return size.width, size.height

        ratio.input(on_ratio, ratio, [width, height], queue=False, api_visibility="private")

        def on_swap(choice: str, w: float, h: float) -> tuple[Any, float, float]:
            if choice and ":" in choice:
                left, right = choice.split(":")
                flipped = f"{right}:{left}"
                return (flipped if flipped in presets else None), h, w
            return gr.skip(), h, w

        swap.click(
            on_swap,
            [ratio, width, height],
            [ratio, width, height],
            queue=False,
            api_visibility="private",
        )
        reuse_seed.click(
            lambda value: (value, False) if value is not None else (gr.skip(), gr.skip()),
            last_seed,
            [seed, randomize],
            queue=False,
            api_visibility="private",
        )
        history.input(
            lambda text: text or gr.skip(), history, prompt, queue=False, api_visibility="private"
        )

        # history tab
        def go_page(delta: int, number: int, search_text: str, only_starred: bool, request):
            target = max(0, number + delta)
            items, ids, label = load_page(search_text, only_starred, target, request)
            if not ids and target > 0:  # past the end: stay where we are
                target = number
                items, ids, label = load_page(search_text, only_starred, target, request)
            return items, ids, label, target

        def newer(number: int, search_text: str, only_starred: bool, request: gr.Request):
            return go_page(-1, number, search_text, only_starred, request)

        def older(number: int, search_text: str, only_starred: bool, request: gr.Request):
            return go_page(1, number, search_text, only_starred, request)

        def first_page(search_text: str, only_starred: bool, request: gr.Request):
            return (*load_page(search_text, only_starred, 0, request), 0)

        paging = [page_number, search, starred_only]
        prev_page.click(newer, paging, [*gallery_outputs, page_number], api_visibility="private")
        next_page.click(older, paging, [*gallery_outputs, page_number], api_visibility="private")
        for trigger in (search.submit, starred_only.input):
            trigger(
                first_page,
                [search, starred_only],
                [*gallery_outputs, page_number],
                api_visibility="private",
            )

        def on_select(ids: list[str], event: gr.SelectData, request: gr.Request):
            if event.index is None or event.index >= len(ids):
                return gr.skip(), gr.skip(), gr.skip(), None
            item = studio.store.get(ids[event.index], user=_user(request))
            if item is None:
                return None, "This image no longer exists.", None, None
            shown = files.for_page(item.path)
            return shown, details_markdown(item.meta), shown, item.id

        gallery.select(
            on_select,
            [page_ids],
            [selected_image, details, download, selected_id],
            api_visibility="private",
        )

        def on_use_settings(image_id: str | None, request: gr.Request) -> list[Any]:
            item = studio.store.get(image_id, user=_user(request)) if image_id else None
            if item is None:
                return [gr.skip()] * (len(form) + 1)
            return [*form_values(item.meta), restore_choice(studio, item.meta.backend)]

        use_settings.click(
            on_use_settings, [selected_id], [*form, backend_choice], api_visibility="private"
        )

        def on_star(image_id, number, search_text, only_starred, request: gr.Request):
            item = studio.store.get(image_id, user=_user(request)) if image_id else None
            if item is not None:
                studio.store.set_starred(item.id, not item.starred, user=_user(request))
            return load_page(search_text, only_starred, number, request)

        star.click(
            on_star,
            [selected_id, page_number, search, starred_only],
            gallery_outputs,
            api_visibility="private",
        )
        for button, visible in ((delete, True), (cancel_delete, False)):
            button.click(
                lambda shown=visible: gr.update(visible=shown),
                None,
                confirm_row,
                queue=False,
                api_visibility="private",
            )

        def on_delete(image_id, number, search_text, only_starred, request: gr.Request):
            if image_id:
                studio.store.delete(image_id, user=_user(request))
            return (
                *load_page(search_text, only_starred, number, request),
                None,
                "Deleted.",
                None,
                None,
                gr.update(visible=False),
            )

        confirm_delete.click(
            on_delete,
            [selected_id, page_number, search, starred_only],
            [*gallery_outputs, selected_image, details, download, selected_id, confirm_row],
            api_visibility="private",
        )

        def on_zip(ids: list[str], request: gr.Request):
            if not ids:
                return gr.update(visible=False)
            path = studio.store.write_zip(ids, user=_user(request))
            return gr.update(value=str(path), visible=True)

        zip_button.click(on_zip, [page_ids], zip_file, api_visibility="private")

        # PNG Info tab
        def on_png(path: str | None) -> tuple[str, ImageMetadata | None]:
            return pnginfo.panel(path)  # every tool's metadata (sd35/pnginfo.py)

        png_file.change(on_png, png_file, [png_text, info_meta], api_visibility="private")
        send_to_form.click(
            lambda meta: form_values(meta) if meta else [gr.skip()] * len(form),
            info_meta,
            form,
            api_visibility="private",
        )
    return page
