"""Running a job from the page: the ``/generate`` handler and the buttons' state around it.

While a job runs Generate says it adds to the queue, and Stop is the prominent button; after
Stop the last finished image comes back (a half-made preview is not left as the result).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from sd35.backends.panel import pinned_backend, schema_for
from sd35.errors import InvalidRequestError, SD35Error
from sd35.panels import wording
from sd35.panels.common import image_value, user_of
from sd35.panels.form import MAX_BATCH, FormValues
from sd35.params import count_value
from sd35.queue_panel import from_api_client, generation_events, stop_running
from sd35.space_client import Preview, Progress, Result
from sd35.studio import Saved, progress_line, result_line

#: Seconds between two step-progress updates sent to the page (each costs Gradio several ms
#: of CPU: see bench/FINDINGS.md).
PROGRESS_INTERVAL = 0.25
#: The same for an API caller: a script reads the result; a line a second is enough to show
#: that a long job lives, and each update it is spared is CPU the server keeps.
API_PROGRESS_INTERVAL = 1.0


class RunView:
    """What the page shows for one run, sent whole with every update (see ``run``); step
    progress is sent at most every ``PROGRESS_INTERVAL`` seconds.

    Every update carries the current values rather than ``gr.skip()``: Gradio rebuilds a
    skipped component's schema on every update, which cost more than the whole stream."""

    def __init__(self, *, page: bool = True) -> None:
        # On the page the last image stays until the first frame arrives (a skip, which costs
        # a schema rebuild per update); an API caller has no last image: None costs nothing.
        self.image: Any = gr.skip() if page else None
        self.status = ""
        self.info = ""
        self.seed: Any = gr.skip()
        self.saved: Any = gr.skip()
        self.ids: list[str] = []
        #: The two field-error slots, [prompt, settings]: a State the page copies into its
        #: Markdowns when it changes, so that each update has two fewer outputs to process.
        self.errors = ["", ""]
        self._interval = PROGRESS_INTERVAL if page else API_PROGRESS_INTERVAL
        self._progress_at = 0.0

    def due(self, event: object) -> bool:
        """False for step progress that comes too soon after the last one shown."""
        if not isinstance(event, Progress):
            return True
        now = time.monotonic()
        if now - self._progress_at < self._interval:
            return False
        self._progress_at = now
        return True

    def show(self, **changes: Any) -> tuple[Any, ...]:
        for name, value in changes.items():
            setattr(self, name, value)
        return (
            self.image,
            self.status,
            self.info,
            self.seed,
            self.saved,
            list(self.ids),
            list(self.errors),
        )


async def run(
    studio: Any,
    prompt: str,
    negative_prompt: str,
    width: float,
    height: float,
    guidance_scale: float,
    steps: float,
    seed: float | None,
    randomize_seed: bool,
    batch: float,
    backend: str | None,
    request: gr.Request,
) -> AsyncIterator[tuple[Any, ...]]:
    """Add ``batch`` images to the queue (pinned to ``backend`` unless "any") and stream them
    into the page: queue lines, progress, previews, each image as it is saved.

    Its outputs, in order: image, status, info, then the page's own States (last seed, last
    saved id, this run's ids, the two field errors). A failure shows once, in the status line
    with its title (form mistakes beside their field); API callers get it as an error."""
    page = not from_api_client(request)
    view = RunView(page=page)
    values = FormValues(
        prompt, negative_prompt, width, height, guidance_scale, steps, seed, randomize_seed
    )
    try:
        base = values.request(schema_for(studio, backend))
        count = count_value("batch_count", 1 if batch is None else batch, MAX_BATCH)
        if page:  # clears the last run's messages at once (an API caller has none)
            yield view.show()
        pinned = pinned_backend(studio, backend)
        async for index, event in generation_events(studio, base, count, request, pinned):
            if isinstance(event, str):  # a queue line: position, or waiting for the quota
                yield view.show(status=event)
            elif isinstance(event, Saved):
                # The queue may run a batch's images side by side: count them, not the index.
                ids = [*view.ids, event.image.id]
                done = "✅ Done" if len(ids) == count else f"✅ {len(ids)} of {count} done"
                yield view.show(
                    image=image_value(studio, event.image.path),
                    status=done,
                    info=result_line(event),
                    seed=event.result.seed,
                    saved=event.image.id,
                    ids=ids,
                )
            elif isinstance(event, Result):
                # Not shown: the saved PNG follows within a few tens of ms, and an update of
                # its own (a file hashed and copied, a picture fetched and decoded by the
                # browser) delayed it more than it showed sooner (bench/FINDINGS.md).
                continue
            elif isinstance(event, Preview):
                yield view.show(image=image_value(studio, event.path))
            elif view.due(event):
                line = progress_line(event, image_index=index, batch=count)
                yield view.show(status=line)
    except InvalidRequestError as error:
        prompt_error, settings_error = wording.field_error(error)
        yield view.show(status="", errors=[prompt_error, settings_error])
        raise gr.Error(
            error.message, title=error.title, visible=False, print_exception=False
        ) from None
    except SD35Error as error:
        yield view.show(status=wording.error_markdown(error, space=studio.client.space))
        raise gr.Error(
            error.message, title=error.title, visible=False, print_exception=False
        ) from None


def buttons(running: bool) -> tuple[Any, Any]:
    """Generate and Stop for a running (or idle) page."""
    return (
        gr.update(value=wording.run_button_label(running)),
        gr.update(variant="stop" if running else "secondary", interactive=running),
    )


def begin(studio: Any) -> tuple[Any, Any]:
    return buttons(True)


def end(studio: Any) -> tuple[Any, Any]:
    return buttons(False)


def stopped(studio: Any, last_saved: str | None, request: gr.Request) -> tuple[Any, ...]:
    """After Stop: the user's running job cancelled (its remote job too; the rest of the queue
    goes on), the last finished image back on screen, the buttons idle again."""
    stop_running(studio.scheduler, user_of(request))
    item = studio.store.get(last_saved, user=user_of(request)) if last_saved else None
    image = image_value(studio, item.path) if item is not None else None
    line = "⏹ Stopped. The remote job was cancelled; the rest of the queue goes on."
    return (image, line, *buttons(False))
