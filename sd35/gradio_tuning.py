"""Two per-event costs of Gradio (6.31.0, checked against its source) that this app does not
need, taken out once at launch. Both measured with ``python3 -m bench.profiling remote`` and an
idle app (bench/FINDINGS.md)."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

#: Seconds Gradio's queue loop sleeps when it has nothing to start (see ``tune_gradio``).
QUEUE_IDLE_POLL = 0.01
#: Seconds between two looks of Gradio's ``gr.Progress`` loop, which the page does not use.
PROGRESS_POLL = 1.0


def tune_gradio(page: Any) -> None:
    """Call after ``page.queue()`` (which makes a new queue) and before requests come in.

    - The queue: ``Queue.start_processing`` sleeps ``sleep_when_free`` (0.001 s, a private
      attribute) whenever nothing can start, busy or idle: 50–75 ms of CPU per second of the
      app's life. ``QUEUE_IDLE_POLL`` costs a queued event at most 10 ms (5 ms on average)
      before it starts, for a twentieth of that CPU. Its loop for ``gr.Progress`` updates
      (``progress_update_sleep_when_free``, also 0.001 s) looks once a second
      (``PROGRESS_POLL``): the page sends its progress as output updates, never through
      ``gr.Progress``, so that loop never has anything to send.
    - matplotlib: ``call_process_api`` wraps every event call in
      ``MatplotlibBackendMananger``, which runs ``import matplotlib`` twice. Without
      matplotlib installed each failed import searches all of ``sys.path`` again (~5 % of the
      app's GIL time under 8 sessions); a ``None`` in ``sys.modules`` makes it fail at once,
      with the same ``ImportError`` Gradio expects.
    """
    queue = getattr(page, "_queue", None)
    floors = {"sleep_when_free": QUEUE_IDLE_POLL, "progress_update_sleep_when_free": PROGRESS_POLL}
    for name, floor in floors.items():
        if queue is not None and getattr(queue, name, floor) < floor:
            setattr(queue, name, floor)
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]
