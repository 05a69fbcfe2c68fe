"""The form panel: prompt, Generate/Stop, size, guidance, steps, seed, batch.

``FormValues`` names the eight fields the form hands over (in the order of ``fields()``), so
handlers take and return named values instead of positional tuples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import gradio as gr

from sd35.backends.panel import add_backend_panel
from sd35.metadata import ImageMetadata
from sd35.panels import wording
from sd35.params import (
    MAX_PROMPT_CHARS,
    GenerationRequest,
    SpaceSchema,
    aspect_ratio_presets,
    request_from_values,
)

MAX_BATCH = 8
EXAMPLES = [
    "A capybara wearing a suit holding a sign that reads Hello World",
    "A serene mountain lake at sunrise, mist over the water, photorealistic",
    "An astronaut riding a horse on Mars, oil painting in the style of Turner",
    "A cosy reading nook with a cat asleep on a pile of books, warm light",
]


@dataclass(frozen=True)
class FormValues:
    """The form's fields by name (sliders hand over floats; the request validates them)."""

    prompt: str
    negative_prompt: str
    width: float
    height: float
    guidance_scale: float
    num_inference_steps: float
    seed: float | None
    randomize_seed: bool

    @classmethod
    def of(cls, *values: Any) -> FormValues:
        """From the values of ``FormPanel.fields()``, in that order."""
        return cls(*values)

    @classmethod
    def from_meta(cls, meta: ImageMetadata) -> FormValues:
        """An image's settings, its seed fixed (so the image can be made again)."""
        return cls(
            meta.prompt,
            meta.negative_prompt,
            meta.width,
            meta.height,
            meta.guidance_scale,
            meta.num_inference_steps,
            meta.seed,
            False,
        )

    def as_list(self) -> list[Any]:
        """Values for ``FormPanel.fields()``, in order."""
        return [getattr(self, field.name) for field in fields(self)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def request(self, schema: SpaceSchema) -> GenerationRequest:
        """The validated request (raises ``InvalidRequestError`` naming the field)."""
        return request_from_values(self.as_dict(), schema)


@dataclass
class FormPanel:
    """The form's components."""

    column: gr.Column
    note: gr.Markdown
    prompt: gr.Textbox
    prompt_error: gr.Markdown
    generate: gr.Button
    stop: gr.Button
    negative: gr.Textbox
    ratio: gr.Radio
    swap: gr.Button
    width: gr.Slider
    height: gr.Slider
    guidance: gr.Slider
    steps: gr.Slider
    seed: gr.Number
    randomize: gr.Checkbox
    reuse_seed: gr.Button
    batch: gr.Slider
    settings_error: gr.Markdown
    recent: gr.Dropdown
    #: The backend to pin the job to, or "any" (hidden with a single backend).
    backend: gr.Dropdown

    def fields(self) -> list[gr.components.Component]:
        """The components of ``FormValues``, in its order."""
        return [
            self.prompt,
            self.negative,
            self.width,
            self.height,
            self.guidance,
            self.steps,
            self.seed,
            self.randomize,
        ]

    def errors(self) -> list[gr.Markdown]:
        return [self.prompt_error, self.settings_error]


def ratio_choices(schema: SpaceSchema) -> list[str]:
    return [*aspect_ratio_presets(schema), wording.CUSTOM_RATIO]


def build_form(studio: Any) -> FormPanel:
    """The form column (call inside a Row), with the studio's bounds and backends."""
    schema = studio.schema()
    presets = aspect_ratio_presets(schema)
    square = presets["1:1"]
    with gr.Column(scale=4, min_width=300, elem_id="form-column") as column:
        note = gr.Markdown("", elem_id="form-note")
        prompt = gr.Textbox(
            label="Prompt",
            info="Ctrl/Cmd+Enter generates · Esc stops",
            lines=3,
            max_length=MAX_PROMPT_CHARS,
            placeholder="Describe the image",
            elem_id="prompt",
        )
        prompt_error = gr.Markdown("", elem_id="prompt-error", elem_classes="field-error")
        with gr.Row(elem_id="action-row"):
            generate = gr.Button(
                wording.run_button_label(False),
                variant="primary",
                elem_id="generate-button",
                scale=3,
            )
            stop = gr.Button(
                "Stop", variant="secondary", interactive=False, elem_id="stop-button", scale=1
            )
        negative = gr.Textbox(
            label="Negative prompt",
            lines=1,
            max_length=MAX_PROMPT_CHARS,
            elem_id="negative-prompt",
        )
        with gr.Row():
            ratio = gr.Radio(
                ratio_choices(schema),
                value="1:1",
                label="Aspect ratio",
                elem_id="aspect-ratio",
                scale=6,
            )
            swap = gr.Button("⇄ Swap", size="sm", elem_id="swap-ratio", scale=1, min_width=64)
        with gr.Row():
            width = _slider(schema.width, square.width, "Width", "width")
            height = _slider(schema.height, square.height, "Height", "height")
        with gr.Row():
            guidance = gr.Slider(
                schema.guidance_scale.minimum,
                schema.guidance_scale.maximum,
                value=schema.guidance_scale.default,
                step=schema.guidance_scale.step,
                label="Guidance scale",
                elem_id="guidance",
                min_width=140,
            )
            steps = _slider(
                schema.num_inference_steps,
                int(schema.num_inference_steps.default),
                "Steps",
                "steps",
                step=1,
            )
        with gr.Row():
            seed = gr.Number(
                value=0, precision=0, minimum=0, label="Seed", elem_id="seed", min_width=140
            )
            batch = gr.Slider(
                1, MAX_BATCH, value=1, step=1, label="Batch count", elem_id="batch", min_width=140
            )
        with gr.Row(equal_height=True):
            randomize = gr.Checkbox(
                value=True, label="Randomize seed", elem_id="randomize", min_width=120
            )
            reuse_seed = gr.Button(
                "♻ Reuse last seed", size="sm", elem_id="reuse-seed", min_width=120
            )
        settings_error = gr.Markdown("", elem_id="settings-error", elem_classes="field-error")
        backend = add_backend_panel(studio, width, height, guidance, steps)
        recent = gr.Dropdown(
            label="Recent prompts", choices=[], value=None, elem_id="prompt-history"
        )
        with gr.Accordion("Examples", open=False):
            gr.Examples(EXAMPLES, inputs=[prompt], label=None)
    return FormPanel(
        column=column,
        note=note,
        prompt=prompt,
        prompt_error=prompt_error,
        generate=generate,
        stop=stop,
        negative=negative,
        ratio=ratio,
        swap=swap,
        width=width,
        height=height,
        guidance=guidance,
        steps=steps,
        seed=seed,
        randomize=randomize,
        reuse_seed=reuse_seed,
        batch=batch,
        settings_error=settings_error,
        backend=backend,
        recent=recent,
    )


def _slider(bounds: Any, value: int, label: str, elem_id: str, *, step: int = 0) -> gr.Slider:
    return gr.Slider(
        int(bounds.minimum),
        int(bounds.maximum),
        value=value,
        step=step or int(bounds.step),
        label=label,
        elem_id=elem_id,
        min_width=140,
    )


# --- handlers (module level, the studio first) ---------------------------------------------


def pick_ratio(studio: Any, choice: str) -> tuple[Any, Any]:
    """A preset chosen: its width and height (Custom leaves them as they are)."""
    size = aspect_ratio_presets(studio.schema()).get(choice)
    if size is None:
        return gr.skip(), gr.skip()
    return size.width, size.height


def follow_size(studio: Any, width: float, height: float) -> str:
    """The radio's choice for the current sizes, whichever way they changed."""
    return wording.ratio_for_size(width, height, aspect_ratio_presets(studio.schema()))


def swap_sides(studio: Any, choice: str, width: float, height: float) -> tuple[str, float, float]:
    """Exchange width and height (the radio follows, e.g. 16:9 → 9:16)."""
    presets = aspect_ratio_presets(studio.schema())
    return wording.ratio_for_size(height, width, presets), height, width


def reuse_last_seed(studio: Any, last_seed: int | None) -> tuple[Any, Any]:
    if last_seed is None:
        return gr.skip(), gr.skip()
    return last_seed, False


def fill_form(source: str, meta: ImageMetadata | None, current: FormValues) -> list[Any]:
    """Form values from ``meta`` plus the note that says what changed (or a skip each)."""
    if meta is None:
        return [gr.skip()] * (len(fields(FormValues)) + 1)
    values = FormValues.from_meta(meta)
    return [*values.as_list(), wording.changes_note(source, current.as_dict(), values.as_dict())]


def wire_form(panel: FormPanel, studio: Any) -> None:
    """The form's own events: the ratio follows the sizes after every way they change."""
    from sd35.panels.common import bind

    private: dict[str, Any] = {"queue": False, "api_visibility": "private"}
    panel.ratio.input(bind(pick_ratio, studio), panel.ratio, [panel.width, panel.height], **private)
    for slider in (panel.width, panel.height):
        slider.change(
            bind(follow_size, studio), [panel.width, panel.height], panel.ratio, **private
        )
    panel.swap.click(
        bind(swap_sides, studio),
        [panel.ratio, panel.width, panel.height],
        [panel.ratio, panel.width, panel.height],
        **private,
    )
    panel.recent.input(lambda text: text or gr.skip(), panel.recent, panel.prompt, **private)
