"""The studio page: panels from ``sd35.panels`` laid out on one screen, and wired together.

Left the form; in the middle the current image with the batch's images; on the right tabs
(History, Queue, PNG Info). Every handler is a module-level function of
a panel module that takes the studio; the logic (requests, saving, wording) lives in modules
that need no browser.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from sd35.panels import form as form_panel
from sd35.panels import history as history_panel
from sd35.panels import output as output_panel
from sd35.panels import pnginfo as pnginfo_panel
from sd35.panels import run as run_panel
from sd35.panels.common import bind, user_of
from sd35.panels.form import EXAMPLES, MAX_BATCH, FormPanel
from sd35.panels.history import PAGE_SIZE, PROMPT_HISTORY, HistoryPanel
from sd35.panels.output import OutputPanel
from sd35.panels.pnginfo import PngInfoPanel
from sd35.panels.run import PROGRESS_INTERVAL
from sd35.params import GenerationRequest, aspect_ratio_presets
from sd35.queue_panel import build_queue_panel
from sd35.studio import Studio

__all__ = [
    "CSS",
    "EXAMPLES",
    "HEAD",
    "MAX_BATCH",
    "PAGE_SIZE",
    "PROGRESS_INTERVAL",
    "aspect_ratio_presets",  # bench/startup.py times it here (now called in sd35.panels.form)
    "build_ui",
    "generate_inputs",
]

#: Keys (Ctrl/Cmd+Enter generates, Esc stops), the light/dark toggle (the system's choice
#: until the user picks one), and a tone when an image finishes while the tab is hidden.
HEAD = """
<script>
document.addEventListener('keydown', (event) => {
  const press = (selector) => {
    const button = document.querySelector(selector);
    if (button && !button.disabled) { event.preventDefault(); button.click(); }
  };
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) press('#generate-button');
  else if (event.key === 'Escape') press('#stop-button');
});
window.sd35ToggleTheme = () => {
  const dark = !document.body.classList.contains('dark');
  document.body.classList.toggle('dark', dark);
  try { localStorage.setItem('sd35-theme', dark ? 'dark' : 'light'); } catch (error) {}
};
(() => {
  // Gradio applies the system's choice when the app mounts; a saved choice wins after that.
  let saved = null;
  try { saved = localStorage.getItem('sd35-theme'); } catch (error) {}
  if (!saved) return;
  const apply = () => {
    if (!document.querySelector('#prompt')) return false;
    document.body.classList.toggle('dark', saved === 'dark');
    return true;
  };
  const watcher = new MutationObserver(() => { if (apply()) watcher.disconnect(); });
  watcher.observe(document.documentElement, {childList: true, subtree: true});
})();
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
    const text = status ? status.textContent : '';  // no layout, unlike innerText
    if (text === last) return;
    last = text;
    if (!text.includes('Done') || !document.hidden) return;
    chime();  // the notification comes when the queue runs empty (sd35/queue_panel.py)
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
.gradio-container { max-width: 1600px !important; }
#top-bar { align-items: center; gap: 8px; }
#top-bar h2 { margin: 0; font-size: 1.15em; }
#space-status, #demo-banner { font-size: 0.9em; }
#theme-toggle { flex: 0 0 auto; max-width: 120px; }
#space-status code { white-space: normal; overflow-wrap: anywhere; }
/* The sliders' bounds (512 … 1024) fit beside a narrower track instead of being cut. */
#form-column .min_value, #form-column .max_value { flex: 0 0 auto; min-width: max-content; }
#form-column input[type="range"] { flex: 1 1 0; width: 0; min-width: 0; }
#run-status { min-height: 1.6em; }
#result-info { color: var(--body-text-color-subdued); font-size: 0.9em; }
.field-error { color: var(--error-text-color, #c62828); font-size: 0.9em; }
#form-note { color: var(--body-text-color-subdued); font-size: 0.9em; }
#stop-button[disabled] { opacity: 0.55; }
#generate-button[disabled] { cursor: progress; }
#gallery .thumbnail-item, #batch-strip .thumbnail-item { background: var(--block-background-fill); }
#side-column .tabitem { padding: 4px 0; }
#page-label { text-align: center; }
/* A failed run is told once, in the status line: not again by Gradio's "Error" badges. */
#run-status [data-testid="status-tracker"], #output-image [data-testid="status-tracker"],
#result-info [data-testid="status-tracker"], #prompt-error [data-testid="status-tracker"],
#settings-error [data-testid="status-tracker"] { display: none !important; }
#aspect-ratio .wrap { gap: 4px; }
#aspect-ratio label { padding: 2px 8px !important; }
#gallery .caption-label, #batch-strip .caption-label {
  max-width: calc(100% - 6px); font-size: 11px; padding: 1px 4px;
}
#batch-strip .caption-label { text-overflow: clip; }
/* Four equal cells that fit the column: Gradio's fixed 100 px cells overflow it. One image
   keeps one cell (no banner), and thumbnails are letterboxed in square cells. */
#gallery .grid-container, #batch-strip .grid-container {
  grid-template-columns: repeat(4, minmax(0, 1fr)) !important;
}
#gallery .gallery-item, #batch-strip .gallery-item,
#gallery .thumbnail-item, #batch-strip .thumbnail-item {
  width: 100% !important; height: auto !important; aspect-ratio: 1 / 1;
}
#title { flex: 0 1 auto; min-width: 160px; }
#png-fields, #details { overflow-wrap: anywhere; }
/* A phone: the columns stack; Generate and Stop stay at the bottom of the screen. */
@media (max-width: 700px) {
  .gradio-container { padding: 4px !important; }
  #action-row {
    position: fixed; left: 0; right: 0; bottom: 0; z-index: 100; margin: 0;
    padding: 8px 10px; background: var(--background-fill-primary);
    box-shadow: 0 -2px 8px rgba(0, 0, 0, 0.15);
  }
  #form-column { padding-bottom: 64px; }
  #top-bar h2 { font-size: 1em; }
  #top-bar { flex-wrap: wrap; }
  #space-status { flex: 1 1 100%; order: 3; }
}
"""


def generate_inputs(request: GenerationRequest, batch: int = 1) -> tuple[Any, ...]:
    """The inputs of the page's ``/generate`` endpoint for ``request``, in order: what a
    ``gradio_client`` caller passes to ``predict(..., api_name="/generate")``. It answers
    ``(image, status, info, …)`` (the rest is the page's own state)."""
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


def build_ui(studio: Studio) -> gr.Blocks:
    """The whole page, wired to ``studio``."""
    with gr.Blocks(title="sd35 — Stable Diffusion 3.5 Large studio") as page:
        with gr.Row(elem_id="top-bar", equal_height=True):
            gr.Markdown("## Stable Diffusion 3.5 Large studio", elem_id="title")
            space_status = gr.Markdown(_status(studio), elem_id="space-status")
            theme = gr.Button("◐ Light / dark", size="sm", elem_id="theme-toggle", scale=0)
        if studio.demo:
            gr.Markdown(
                "**Demo mode:** images come from a local stand-in Space that paints test "
                "patterns, not from Stable Diffusion.",
                elem_id="demo-banner",
            )
        with gr.Row(elem_id="main-row"):
            form = form_panel.build_form(studio)
            output = output_panel.build_output()
            with (
                gr.Column(scale=5, min_width=300, elem_id="side-column"),
                gr.Tabs(elem_id="side-tabs"),
            ):
                with gr.Tab("History", id="history", elem_id="history-tab"):
                    history = history_panel.build_history()
                with gr.Tab("Queue", id="queue", elem_id="queue-tab") as queue_tab:
                    build_queue_panel(studio, queue_tab)
                with gr.Tab("PNG Info", id="pnginfo", elem_id="pnginfo-tab"):
                    pnginfo = pnginfo_panel.build_pnginfo()
        theme.click(None, None, None, js="() => window.sd35ToggleTheme()", queue=False)
        _wire(page, studio, space_status, form, output, history, pnginfo)
    return page


def _status(studio: Studio) -> str:
    return studio.status_text()


def on_load(studio: Studio, search: str, only_starred: bool, request: gr.Request):
    """When the page opens: the Space's status, its live bounds, recent prompts, History."""
    live = studio.schema()
    bounds = [
        gr.update(minimum=int(r.minimum), maximum=int(r.maximum), step=int(r.step))
        for r in (live.width, live.height)
    ]
    return (
        _status(studio),
        *bounds,
        gr.update(choices=form_panel.ratio_choices(live)),
        gr.update(choices=studio.store.prompt_history(limit=PROMPT_HISTORY, user=user_of(request))),
        *history_panel.load_page(studio, search, only_starred, 0, request),
    )


#: Runs in the browser after the form was filled from an image: brings the form into view.
SHOW_FORM_JS = """
() => document.querySelector('#form-column')?.scrollIntoView({behavior: 'smooth', block: 'start'})
"""


def _wire(
    page: gr.Blocks,
    studio: Studio,
    space_status: gr.Markdown,
    form: FormPanel,
    output: OutputPanel,
    history: HistoryPanel,
    pnginfo: PngInfoPanel,
) -> None:
    """Events that join panels; each panel wires its own inner events."""
    private: dict[str, Any] = {"api_visibility": "private"}
    last_seed, last_saved, run_ids = gr.State(None), gr.State(None), gr.State([])
    field_errors = gr.State(["", ""])  # [prompt, settings]: see sd35.panels.run.RunView
    form_panel.wire_form(form, studio)
    history_panel.wire_history(history, studio)
    pnginfo_panel.wire_pnginfo(pnginfo, studio)

    page.load(
        bind(on_load, studio),
        [history.search, history.starred_only],
        [space_status, form.width, form.height, form.ratio, form.recent, *history.listing()],
        show_progress="hidden",
        queue=False,
        **private,
    )
    gr.Timer(10).tick(
        lambda: _status(studio), None, space_status, show_progress="hidden", queue=False, **private
    )

    # Generate: the buttons show the state, then the job streams into the output panel.
    buttons = [form.generate, form.stop]
    # Two listeners, not a chain: the job does not wait on a round trip for the buttons
    # (measured: a chain delayed the first preview). `begin` is registered first and answers
    # without the queue, so it lands before the job can end.
    form.generate.click(bind(run_panel.begin, studio), None, buttons, queue=False, **private)
    run_event = form.generate.click(
        bind(run_panel.run, studio),
        [*form.fields(), form.batch, form.backend],
        [
            output.image,
            output.status,
            output.info,
            last_seed,
            last_saved,
            run_ids,
            field_errors,
        ],
        api_name="generate",
        # Raw values: a prompt ["x"] must be refused, not turned into "['x']".
        preprocess=False,
        # No Gradio ``validator`` here: an event with one skips the queue's ``max_size`` bound
        # (tests/test_load.py). ``run`` refuses bad values itself, beside the field.
        show_progress="hidden",
        concurrency_limit=studio.concurrency,
        concurrency_id="generate",
        trigger_mode="multiple",  # Generate adds to the queue while a job runs
    )
    # Gradio's `then` is not triggered after an error here (6.x), so `failure` too.
    run_event.then(bind(run_panel.end, studio), None, buttons, queue=False, **private)
    run_event.failure(bind(run_panel.end, studio), None, buttons, queue=False, **private)
    # The message follows the cancel, so a last progress line cannot overwrite it.
    form.stop.click(None, None, None, cancels=[run_event], queue=False, **private).then(
        bind(run_panel.stopped, studio),
        last_saved,
        [output.image, output.status, *buttons],
        queue=False,
        **private,
    )
    last_saved.change(
        bind(history_panel.after_save, studio),
        [history.search, history.starred_only],
        [*history.listing(), history.page_number, form.recent],
        show_progress="hidden",
        **private,
    )
    field_errors.change(
        lambda errors: tuple(errors), field_errors, form.errors(), queue=False, **private
    )
    run_ids.change(
        bind(output_panel.show_batch, studio),
        [run_ids, form.batch],
        output.strip,
        show_progress="hidden",
        **private,
    )
    output.strip.select(
        bind(output_panel.pick_from_batch, studio), run_ids, [output.image, output.info], **private
    )
    form.reuse_seed.click(
        bind(form_panel.reuse_last_seed, studio),
        last_seed,
        [form.seed, form.randomize],
        queue=False,
        **private,
    )

    # Filling the form from an image says what changed and brings the form into view.
    fields = form.fields()
    history.use_settings.click(
        bind(history_panel.use_settings, studio),
        [history.selected_id, *fields],
        [*fields, form.note, form.backend],
        **private,
    ).then(None, js=SHOW_FORM_JS, **private)
    pnginfo.send_to_form.click(
        bind(pnginfo_panel.send_to_form, studio),
        [pnginfo.meta, *fields],
        [*fields, form.note],
        **private,
    ).then(None, js=SHOW_FORM_JS, **private)
