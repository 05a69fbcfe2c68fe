"""The page's Queue panel and the page's way of generating through the queue.

* ``generation_events``: what the page's Generate streams. A click in the page queues one job
  per image (so a batch of N is N jobs, and clicks while a job runs simply add more), then
  follows them: the Space's events, queue positions, and, when the GPU quota is out, a line
  saying when the job will try again by itself (the stream ends; the job stays queued). A
  ``gradio_client`` caller of ``/generate`` (it sends ``x-gradio-user: api``) keeps the
  synchronous path: it is answered at once, and no job is left behind for a caller who left.
* ``build_queue_panel``: each job of the user with its prompt, state and position; for a
  waiting job a live countdown ("Waiting for GPU quota: next try at 14:32, in 0:09:48") with
  *Try now*; per job *Cancel*, *Move to top*, *Retry*; for the queue *Pause*, *Resume*,
  *Clear*. The panel is HTML rendered here (``render_queue``), refreshed every second, and its
  buttons report clicks through the HTML component's ``trigger``. When the user's queue runs
  empty, the page raises a notification (if the tab is hidden and the user allowed it).
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import gradio as gr

from sd35.errors import SD35Error
from sd35.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    PENDING,
    QUEUED,
    RUNNING,
    WAITING,
    Job,
    countdown,
    waiting_line,
)
from sd35.panels.wording import error_markdown
from sd35.params import GenerationRequest
from sd35.scheduler import JobChanged, Scheduler
from sd35.space_client import Progress, Queued, Started

#: Jobs listed in the panel (the rest are counted): keeps the page fast with 1,000 queued.
PANEL_ROWS = 50
#: Seconds between two refreshes of the panel.
REFRESH_SECONDS = 1.0

STATE_LABELS = {
    QUEUED: "⏳ Queued",
    RUNNING: "🎨 Running",
    WAITING: "⏸ Waiting",
    DONE: "✅ Done",
    FAILED: "⚠️ Failed",
    CANCELLED: "✖ Cancelled",
}


class JobFailed(SD35Error):
    """A queued job of this click failed; ``title`` and message are the job's own."""

    def __init__(self, title: str, message: str) -> None:
        self.title = title
        super().__init__(message)


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def from_api_client(request: gr.Request | None) -> bool:
    """True for a ``gradio_client`` caller (not a page in a browser)."""
    headers = getattr(request, "headers", None) or {}
    return headers.get("x-gradio-user") == "api"


# --- generating from the page -----------------------------------------------------------------


async def generation_events(
    studio: Any,
    request: GenerationRequest,
    count: int,
    caller: gr.Request | None,
    backend: Any = None,
) -> AsyncIterator[tuple[int, Any]]:
    """``(image index from 1, event)`` for the page's Generate of ``count`` images: Space
    events, ``Saved``, and plain status lines (str). Raises ``SD35Error`` when an image fails."""
    user = _user(caller)
    if studio.scheduler is None or from_api_client(caller):
        async for item in studio.generate(request, count, user, backend=backend):
            yield item
        return
    pin = backend.name if backend is not None else None  # a job pinned to a backend
    async for item in follow(studio, request, count, user, pin):
        yield item


async def follow(
    studio: Any,
    request: GenerationRequest,
    count: int,
    user: str | None,
    backend: str | None = None,
) -> AsyncIterator[tuple[int, Any]]:
    """Queue the batch (``Studio.submit``), then stream its events until each job is done,
    failed or cancelled, or one waits (then the stream ends with the waiting line; the jobs
    stay in the queue)."""
    scheduler: Scheduler = studio.scheduler
    with scheduler.watch() as updates:
        jobs = await asyncio.to_thread(
            studio.submit, request, count, user, source="page", backend=backend
        )
        index_of = {job.id: index for index, job in enumerate(jobs, start=1)}
        pending = set(index_of)
        first = await asyncio.to_thread(scheduler.store.get, jobs[0].id)
        if first is not None and first.state == QUEUED:
            yield 1, queue_line(scheduler, first, len(jobs))
            if scheduler.is_paused(user):
                return  # nothing will start: do not hold one of the page's streams open
        errors: dict[str, SD35Error] = {}  # the failure that made a job wait, if published
        while pending:
            job_id, item = await updates.get()
            if job_id not in pending:
                continue
            index = index_of[job_id]
            if isinstance(item, SD35Error):
                errors[job_id] = item  # shown with the wait that follows it
                continue
            if not isinstance(item, JobChanged):
                yield index, item
                continue
            job = item.job
            if job is None or job.state in (DONE, CANCELLED):
                pending.discard(job_id)
            elif job.state == FAILED:
                raise JobFailed(job.error_title or "Error", job.error_message or "It failed.")
            elif job.state == WAITING and job.retry_at is not None:
                line = waiting_line(job.retry_at, time.time(), job.reason)
                wait = f"⏸ {line}. It will try again by itself (see Queue)."
                error = errors.get(job_id)
                if error is not None:  # once, with its title, link and token advice
                    yield index, f"{error_markdown(error)}\n\n{wait}"
                else:
                    yield index, f"{wait} {job.reason}" if job.reason else wait
                return
            elif job.state == QUEUED:
                yield index, queue_line(scheduler, job, len(jobs))


def queue_line(scheduler: Scheduler, job: Job, batch: int) -> str:
    position = scheduler.store.position(job)
    where = f" at position {position}" if position else ""
    paused = " (your queue is paused)" if scheduler.is_paused(job.owner) else ""
    count = f"{batch} images queued" if batch > 1 else "Queued"
    return f"⏳ {count}{where} in your queue{paused}"


def stop_running(scheduler: Scheduler | None, user: str | None) -> int:
    """The page's Stop: cancel the user's running jobs (their remote jobs too)."""
    if scheduler is None:
        return 0
    running = scheduler.store.list(user, states=(RUNNING,), limit=1000)
    return sum(scheduler.cancel(job.id, user) for job in running)


# --- the panel -----------------------------------------------------------------------------------


def _button(action: str, label: str, job_id: str = "") -> str:
    data = f' data-job="{html.escape(job_id)}"' if job_id else ""
    return (
        f'<button class="queue-action" data-action="{action}"{data} '
        f'id="queue-{action}{"-" + html.escape(job_id) if job_id else ""}">{label}</button>'
    )


def _wait_html(retry_at: float, now: float, reason: str | None) -> str:
    """The waiting line with a ticking countdown, and *Try now*."""
    what = "GPU quota" if "quota" in (reason or "").lower() else "the Space"
    return (
        f'<span class="queue-wait" title="{html.escape(reason or "")}">Waiting for {what}: '
        f"next try at {datetime.fromtimestamp(retry_at):%H:%M}, in "
        f'<span class="queue-countdown" data-retry-at="{retry_at:.3f}">'
        f"{countdown(retry_at - now)}</span></span> " + _button("try-now", "Try now")
    )


def _detail(scheduler: Scheduler, job: Job, now: float) -> str:
    if job.state == WAITING and job.retry_at is not None:
        return _wait_html(job.retry_at, now, job.reason)
    if job.state == RUNNING:
        event = scheduler.live(job.id)
        if isinstance(event, Progress):
            return f"step {event.step} of {event.total}"
        if isinstance(event, Queued):
            return "in the Space's queue"
        if isinstance(event, Started):
            return "generating"
        return "starting"
    if job.state == FAILED:
        return (
            f"<b>{html.escape(job.error_title or '')}</b>: {html.escape(job.error_message or '')}"
        )
    return ""


def _row(scheduler: Scheduler, job: Job, position: int | None, now: float) -> str:
    prompt = job.prompt if job.request is not None else "(unreadable job)"
    short = prompt if len(prompt) <= 80 else prompt[:79] + "…"
    buttons = []
    if job.state in (*PENDING, RUNNING):
        buttons.append(_button("cancel", "Cancel", job.id))
    if job.state in PENDING and position != 1:
        buttons.append(_button("top", "Move to top", job.id))
    if job.state in (FAILED, CANCELLED):
        buttons.append(_button("retry", "Retry", job.id))
    return (
        f'<tr class="queue-job" data-job="{html.escape(job.id)}" data-state="{job.state}">'
        f'<td class="queue-position">{position or ""}</td>'
        f'<td class="queue-prompt" title="{html.escape(prompt)}">{html.escape(short)}</td>'
        f'<td class="queue-state">{STATE_LABELS.get(job.state, html.escape(job.state))}</td>'
        f'<td class="queue-detail">{_detail(scheduler, job, now)}</td>'
        f'<td class="queue-buttons">{"".join(buttons)}</td></tr>'
    )


def render_queue(scheduler: Scheduler | None, user: str | None, *, now: float | None = None) -> str:
    """The panel's HTML for ``user``: running, then pending in queue order, then the latest
    finished; at most ``PANEL_ROWS`` rows."""
    if scheduler is None:
        return '<div id="queue-root" data-active="0">The queue is not running.</div>'
    now = time.time() if now is None else now
    store = scheduler.store
    counts = store.counts(user)
    active = sum(counts.get(state, 0) for state in (*PENDING, RUNNING))
    running = store.list(user, states=(RUNNING,), limit=PANEL_ROWS)
    pending = store.list(user, states=PENDING, newest_first=False, limit=PANEL_ROWS)
    room = max(0, PANEL_ROWS - len(running) - len(pending))
    finished = store.list(user, states=(DONE, FAILED, CANCELLED), limit=min(room, 10))
    rows = [_row(scheduler, job, None, now) for job in running]
    rows += [_row(scheduler, job, i, now) for i, job in enumerate(pending, start=1)]
    rows += [_row(scheduler, job, None, now) for job in finished]
    paused = scheduler.is_paused(user)
    summary = ", ".join(
        f"{counts[state]} {state}"
        for state in (RUNNING, QUEUED, WAITING, FAILED)
        if counts.get(state)
    )
    banner = "".join(
        f'<div class="queue-banner">⏸ {_wait_html(p.retry_at, now, p.reason)}</div>'
        for p in scheduler.pauses()
    )
    hidden = active + sum(counts.get(s, 0) for s in (DONE, FAILED, CANCELLED)) - len(rows)
    more = f'<div class="queue-more">… and {hidden} more</div>' if hidden > 0 else ""
    toolbar = (_button("resume", "▶ Resume") if paused else _button("pause", "⏸ Pause")) + _button(
        "clear", "Clear"
    )
    state_text = " · paused" if paused else ""
    table = (
        f'<table class="queue-table"><tbody>{"".join(rows)}</tbody></table>'
        if rows
        else '<div class="queue-empty">Nothing queued. Generate adds images here.</div>'
    )
    return (
        f'<div id="queue-root" data-active="{active}" data-paused="{str(paused).lower()}">'
        f'<div class="queue-head"><b>Queue</b> <span id="queue-summary">'
        f"{summary or 'empty'}{state_text}</span> {toolbar}</div>"
        f"{banner}{table}{more}</div>"
    )


#: Runs once when the panel loads: delegated clicks (the HTML is re-rendered every second),
#: the ticking countdowns, and the notification when the queue runs empty.
PANEL_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  trigger('click', {action: button.dataset.action, job: button.dataset.job || ''});
});
const pad = (n) => String(n).padStart(2, '0');
const tick = () => {
  element.querySelectorAll('.queue-countdown').forEach((span) => {
    const left = Math.max(0, Math.ceil(parseFloat(span.dataset.retryAt) - Date.now() / 1000));
    const hours = Math.floor(left / 3600), minutes = Math.floor((left % 3600) / 60);
    span.textContent = `${hours}:${pad(minutes)}:${pad(left % 60)}`;
  });
  const root = element.querySelector('#queue-root');
  const active = root ? parseInt(root.dataset.active || '0', 10) : 0;
  if (element._wasActive && active === 0 && document.hidden &&
      'Notification' in window && Notification.permission === 'granted') {
    new Notification('sd35: your queue is done');
  }
  element._wasActive = active > 0;
};
setInterval(tick, 1000);
"""

PANEL_CSS = """
#queue-panel .queue-table { width: 100%; border-collapse: collapse; }
#queue-panel td { padding: 2px 6px; border-bottom: 1px solid var(--border-color-primary); }
#queue-panel .queue-prompt { max-width: 32em; overflow: hidden; text-overflow: ellipsis; }
#queue-panel .queue-action { margin: 0 2px; padding: 0 6px; border-radius: 4px;
  border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); }
#queue-panel .queue-banner { margin: 4px 0; font-weight: 600; }
"""


def act(scheduler: Scheduler | None, user: str | None, action: str, job_id: str) -> None:
    """Do what a panel button asks, for ``user``'s own jobs only."""
    if scheduler is None:
        return
    if action == "cancel":
        scheduler.cancel(job_id, user)
    elif action == "top":
        scheduler.move_to_top(job_id, user)
    elif action == "retry":
        scheduler.retry(job_id, user)
    elif action == "try-now":
        scheduler.try_now(user)
    elif action == "pause":
        scheduler.pause(user)
    elif action == "resume":
        scheduler.resume(user)
    elif action == "clear":
        scheduler.clear(user)


#: What the panel shows until its first refresh (no ``#queue-root``: nothing waits on it).
PLACEHOLDER = '<div class="queue-loading">Loading the queue…</div>'


def build_queue_panel(studio: Any, tab: gr.Tab) -> gr.HTML:
    """The Queue panel (call inside ``tab``): filled when the tab is opened, then refreshed
    every second. Nothing of it runs when the page opens: Gradio mounts a tab's content only
    when it is first shown, so a page-load refresh (1,000 queued jobs: a large HTML) and a
    timer ticking from the start only delayed the page's own load event (bench/FINDINGS.md)."""
    panel = gr.HTML(
        PLACEHOLDER,
        elem_id="queue-panel",
        js_on_load=PANEL_JS,
        css_template=PANEL_CSS,
    )
    timer = gr.Timer(REFRESH_SECONDS, active=False)

    def refresh(request: gr.Request) -> str:
        return render_queue(studio.scheduler, _user(request))

    def opened(request: gr.Request) -> tuple[str, Any]:
        # The timer keeps running once the panel exists: its script notifies when the queue
        # runs empty while the browser tab is hidden, whichever panel tab is in front.
        return refresh(request), gr.Timer(active=True)

    def on_click(event: gr.EventData, request: gr.Request) -> str:
        data = getattr(event, "_data", None) or {}
        action, job_id = str(data.get("action", "")), str(data.get("job", ""))
        act(studio.scheduler, _user(request), action, job_id)
        return refresh(request)

    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "private"}
    panel.click(on_click, None, panel, queue=False, **quiet)
    tab.select(opened, None, [panel, timer], queue=False, **quiet)
    timer.tick(refresh, None, panel, queue=False, **quiet)
    return panel
