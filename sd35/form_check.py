"""The page's form checked before a job starts, each problem shown beside its field
(Gradio's event ``validator``): the same rules as ``request_from_form`` and the batch count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from sd35.errors import InvalidRequestError
from sd35.params import SpaceSchema, count_value
from sd35.studio import request_from_form

#: The request field behind each input of the page's ``/generate``, in order.
FORM_FIELDS = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "guidance_scale",
    "num_inference_steps",
    "seed",
    "randomize_seed",
    "batch_count",
)


def form_validator(schema: Callable[..., SpaceSchema], max_batch: int) -> Callable[..., list]:
    """A validator for the page's generate event: ``gr.validate`` per input, the first bad one
    with the message naming what is wrong."""

    def validate(*values: Any) -> list[dict[str, Any]]:
        # Inputs after the form's own (e.g. the backend choice) pick the bounds to check.
        extra = values[len(FORM_FIELDS) :]
        problem: InvalidRequestError | None = None
        try:
            request_from_form(*values[:8], schema(*extra))
            count_value("batch_count", 1 if values[8] is None else values[8], max_batch)
        except InvalidRequestError as error:
            problem = error
        return [
            gr.validate(True, "")
            if problem is None or problem.field != name
            else gr.validate(False, problem.message)
            for name in FORM_FIELDS
        ] + [gr.validate(True, "") for _ in extra]

    return validate
