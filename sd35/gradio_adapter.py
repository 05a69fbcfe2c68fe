"""Everything sd35 takes from ``gradio_client`` beyond its documented API, in one class.

``gradio_client`` offers ``Client.submit`` and a ``Job`` with ``done()``, ``result()``,
``status()`` and ``cancel()``. sd35 needs four things more: every update in order (not only
the latest status), the id the Space gave the job, a cancel that goes through our own
connection settings, and each message of the Space's stream as soon as it arrives (see
``wake_on_arrival``). Those rest on attributes ``gradio_client`` does not document, so they
live here and nowhere else; each says what it relies on and why.

Checked against gradio_client 2.7.2 (``gradio_client/client.py``, ``gradio_client/utils.py``).
When ``gradio_client`` is upgraded, this is the one file to read again.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from typing import Any

import gradio_client.utils as client_utils
import httpx
from gradio_client import Client

#: How often ``wait_accepted`` looks for the job's id.
_POLL = 0.01


class GradioJob:
    """One job submitted to a Space through a ``gradio_client.Client`` (which must stay
    this job's own: cancelling on a shared client cancels its whole session)."""

    def __init__(self, client: Client, api_name: str, inputs: Sequence[Any]) -> None:
        self.client = client
        self.api_name = api_name
        # Public API. It checks the arguments against the endpoint before sending anything.
        self._job = client.submit(*inputs, api_name=api_name)

    def done(self) -> bool:
        return self._job.done()

    def when_updated(self, callback: Any) -> bool:
        """Call ``callback()`` (from gradio_client's thread) after each update is queued for
        ``updates``; False, and nothing changed, if this gradio_client is not shaped so."""
        # Job.communicator.updates and .lock (2.7.2): the stream reader puts each update while
        # holding the lock, so swapping the queue under it loses none and keeps their order.
        communicator = getattr(self._job, "communicator", None)
        queue = getattr(communicator, "updates", None)
        lock = getattr(communicator, "lock", None)
        if not isinstance(queue, asyncio.Queue) or lock is None:
            return False
        with lock:
            waking = _WakingQueue(callback)
            while True:
                try:
                    waking.put_nowait(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            communicator.updates = waking
        return True

    def when_done(self, callback: Any) -> None:
        """Call ``callback()`` (from gradio_client's thread) once the job has ended; at once if
        it has. Public API: a ``Job`` is a ``concurrent.futures.Future``."""
        self._job.add_done_callback(lambda _: callback())

    def result(self) -> Any:
        """The outputs of a finished job; raises what the job raised."""
        return self._job.result(timeout=0)

    @property
    def event_id(self) -> str | None:
        """The id the Space gave the job when it accepted it; None until then."""
        # Job.communicator.event_id (utils.Communicator, 2.7.2), set by the worker thread
        # from the answer to queue/join. Needed twice: a failed job without one never reached
        # the Space, so submitting it again cannot run it twice; and /cancel names it.
        return getattr(self._job.communicator, "event_id", None)

    def updates(self) -> list[Any]:
        """Every status and output update that arrived since the last call, oldest first
        (``StatusUpdate`` and ``OutputUpdate`` of ``gradio_client.utils``). Never blocks."""
        # Job.communicator.updates (an asyncio.Queue, 2.7.2): Job.status() keeps only the
        # latest status and Job.outputs() no progress, so steps and previews would be lost.
        # gradio_client fills the queue from its worker threads; get_nowait() is safe from
        # any thread, where awaiting the queue from another event loop is not.
        queue = getattr(self._job.communicator, "updates", None)
        updates: list[Any] = []
        while queue is not None:
            try:
                updates.append(queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return updates

    def wait_accepted(self, timeout: float) -> str | None:
        """The job's id once the Space has accepted it; None if it ends or ``timeout``
        passes first (then the Space has nothing to cancel)."""
        # The id is set just after the Space accepts the job; updates can arrive first.
        deadline = time.monotonic() + timeout
        while self.event_id is None and not self.done():
            if time.monotonic() > deadline:
                return None
            time.sleep(_POLL)
        return self.event_id

    def send_cancel(self, **httpx_kwargs: Any) -> None:
        """POST the Space's ``/cancel`` for this job with our own ``httpx`` settings (proxy,
        timeouts, TLS context). Raises ``httpx.HTTPError`` when it cannot be sent."""
        # Job.cancel() would send gradio_client's own request, built from the client's
        # settings rather than ours; we send the same body ourselves. It needs:
        # - Client._infer_fn_index (private, 2.7.2): the endpoint's fn_index, which /cancel
        #   takes instead of the api_name;
        # - Client.src_prefixed (undocumented, 2.7.2): the Space's URL with its API prefix
        #   (/gradio_api/ on Gradio 5+, none on 4), so we never build routes ourselves;
        # - Client.session_hash, .headers, .cookies (undocumented attributes, 2.7.2): the
        #   session the job runs in, the token header and the Space's cookies.
        client = self.client
        httpx.post(
            urllib.parse.urljoin(client.src_prefixed, "cancel"),
            json={
                "fn_index": client._infer_fn_index(self.api_name, None),
                "session_hash": client.session_hash,
                "event_id": self.event_id,
            },
            headers={**client.headers},
            cookies=client.cookies,
            **httpx_kwargs,
        )


class _WakingQueue(asyncio.Queue):
    """A job's update queue that calls ``wake()`` after each put (``GradioJob.when_updated``)."""

    def __init__(self, wake: Any) -> None:
        super().__init__()
        self._wake = wake

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        if self._wake is not None:
            self._wake()


# --- each stream message as soon as it arrives ------------------------------------------------
#
# A job's messages reach gradio_client in two threads: ``Client.stream_messages`` reads the SSE
# stream and appends each message to a deque per event (``Client.pending_messages_per_event``),
# and ``utils.stream_sse_v1plus`` takes them from that deque, sleeping ``time.sleep(0.05)``
# whenever it is empty (2.7.2). So every message, the final image's included, waited 25 ms on
# average and up to 50 ms before anyone saw it: on both hops of a page's job, and 4 % of a
# 1 s job (bench/FINDINGS.md). For the clients sd35 makes, each event's deque wakes its reader
# when a message is appended, and the reader's sleep waits for that (the 50 ms stay its longest
# wait). Other Clients of the process (a benchmark's "bare" client) keep polling as before.


class _WakingMessages(deque):
    """One event's pending messages; ``append`` wakes the reader waiting in ``_PacedTime``."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self.arrived = threading.Condition()

    def append(self, item: Any) -> None:
        with self.arrived:
            super().append(item)
            self.arrived.notify_all()


def _waking(messages: Any) -> Any:
    return messages if isinstance(messages, _WakingMessages) else _WakingMessages(messages or ())


class _WakingEvents(dict):
    """``Client.pending_messages_per_event`` of our clients: every deque put in is a waking one
    (gradio_client adds them with ``[id] = deque()`` and ``setdefault(id, deque())``)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _waking(value))

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return super().setdefault(key, _waking(default))


class _PacedTime:
    """The ``time`` module as ``gradio_client.utils`` sees it: the same, except that the
    stream reader's sleep on an empty deque of ours ends when a message arrives."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        # The caller's local ``pending_messages`` (stream_sse_v1plus, 2.7.2) names the deque
        # it polls; check_for_cancel and anyone else have none and sleep as they asked.
        messages = sys._getframe(1).f_locals.get("pending_messages")
        if not isinstance(messages, _WakingMessages):
            time.sleep(seconds)
            return
        with messages.arrived:  # checked under the lock append takes: no wake-up is missed
            if not messages:
                messages.arrived.wait(seconds)


_install_lock = threading.Lock()


def wake_on_arrival(client: Client) -> bool:
    """Make ``client`` (before its first job) hand each stream message on as it arrives;
    False, and nothing changed, when this gradio_client is not shaped as expected."""
    reader = getattr(client_utils, "stream_sse_v1plus", None)
    if reader is None or "pending_messages" not in reader.__code__.co_varnames:
        return False
    if not isinstance(getattr(client, "pending_messages_per_event", None), dict):
        return False
    with _install_lock:
        if client_utils.time is time:
            client_utils.time = _PacedTime()  # type: ignore[assignment]
        elif not isinstance(client_utils.time, _PacedTime):
            return False  # someone else replaced it: leave it alone
    with client.pending_lock:
        client.pending_messages_per_event = _WakingEvents(client.pending_messages_per_event)
    return True
