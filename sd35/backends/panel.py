"""The page's backend panel, beside the form: which backend runs the next job ("any", in
failover order, or one pinned), each backend's state (ready, waiting until a time, out of
credits, unreachable), which can bill, and the form's limits following the chosen backend.

``ui.py`` calls ``add_backend_panel`` once inside its form column; everything else is here.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from sd35.backends import failover
from sd35.params import SpaceSchema

ANY = "Any (failover order)"


def pinned_backend(studio: Any, choice: str | None) -> Any:
    """The backend ``choice`` names, or None for "any" (or a name no longer configured)."""
    return next((b for b in studio.backends if b.name == choice), None)


def schema_for(studio: Any, choice: str | None) -> SpaceSchema:
    """The bounds to validate the form against: the pinned backend's, else the first one's
    (the one the job goes to unless it is paused)."""
    backend = pinned_backend(studio, choice) or (studio.backends[0] if studio.backends else None)
    return backend.schema() if backend is not None else studio.schema()


def restore_choice(studio: Any, backend_name: str) -> str:
    """ "Use these settings": the image's backend when it is still configured, else "any"."""
    return backend_name if pinned_backend(studio, backend_name) is not None else ANY


def panel_text(studio: Any) -> str:
    states = studio.backend_states()
    return failover.state_lines(states) if states else ""


def add_backend_panel(studio: Any, width: Any, height: Any, guidance: Any, steps: Any) -> Any:
    """The backend dropdown and the states list (refreshed every 5 s); returns the dropdown,
    whose value is the pin (or ``ANY``). Hidden with a single backend."""
    several = len(studio.backends) > 1
    choice = gr.Dropdown(
        [ANY, *(b.name for b in studio.backends)],
        value=ANY,
        label="Backend",
        visible=several,
        elem_id="backend-choice",
    )
    states = gr.Markdown(panel_text(studio), visible=several, elem_id="backend-states")
    # With one backend the panel is hidden: no timer ticks for it.
    gr.Timer(5, active=several).tick(
        lambda: panel_text(studio),
        None,
        states,
        show_progress="hidden",
        queue=False,
        api_visibility="private",
    )

    def limits(value: str) -> tuple[Any, ...]:
        bounds = schema_for(studio, value)
        return (
            gr.update(minimum=int(bounds.width.minimum), maximum=int(bounds.width.maximum),
                      step=int(bounds.width.step)),
            gr.update(minimum=int(bounds.height.minimum), maximum=int(bounds.height.maximum),
                      step=int(bounds.height.step)),
            gr.update(minimum=bounds.guidance_scale.minimum,
                      maximum=bounds.guidance_scale.maximum),
            gr.update(minimum=int(bounds.num_inference_steps.minimum),
                      maximum=int(bounds.num_inference_steps.maximum)),
        )  # fmt: skip

    choice.change(
        limits, choice, [width, height, guidance, steps], queue=False, api_visibility="private"
    )
    return choice
