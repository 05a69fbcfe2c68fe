"""The job records of the queue: one row per image to make, in the gallery's SQLite file.

A job is stored (committed) before the call that submitted it returns, and every change of
state is one short transaction, so a crash loses nothing that was accepted. States::

    queued ──► running ──► done (image id)
      ▲  ▲        │ ├────► failed (error title and message)
      │  └ waiting ◄┘ └──► cancelled        (waiting: retry_at and the reason)

The table lives in the gallery's index file (``.index.sqlite3``) on a connection of its own;
``JobStore`` must be opened *after* the gallery store, which checks (and, if empty, creates)
that file's schema. On open, ``recover`` puts jobs a crash left ``running`` back in the queue,
unless their image is already in the gallery: the PNG carries the job id in its metadata
(``extra.job``), so a crash between saving the image and marking the job done is detected and
the job is marked done, never run twice. Finished rows older than ``KEEP_FINISHED`` are pruned
(their images stay).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sd35.errors import SD35Error
from sd35.image_index import connect
from sd35.params import GenerationRequest

QUEUED, RUNNING, WAITING, DONE, FAILED, CANCELLED = (
    "queued",
    "running",
    "waiting",
    "done",
    "failed",
    "cancelled",
)
STATES = (QUEUED, RUNNING, WAITING, DONE, FAILED, CANCELLED)
PENDING = (QUEUED, WAITING)
FINISHED = (DONE, FAILED, CANCELLED)
#: Finished job rows are kept this long (seconds), then pruned; their images stay.
KEEP_FINISHED = 30 * 24 * 3600
#: The metadata key (under ``extra``) that ties a saved PNG to the job that made it.
JOB_KEY = "job"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,           -- queue order within a user; 'move to top' lowers it
    owner TEXT,                     -- NULL: no owner (single-user server)
    source TEXT NOT NULL,           -- page, api or cli
    request TEXT NOT NULL,          -- the validated GenerationRequest as JSON
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,  -- times it was started
    retries INTEGER NOT NULL DEFAULT 0,   -- transient failures in a row
    retry_at REAL,                  -- when waiting: epoch seconds of the next try
    reason TEXT,                    -- when waiting: why
    error_title TEXT,
    error_message TEXT,
    image_id TEXT,                  -- when done
    backend TEXT,                   -- name of the backend that ran it last
    history TEXT NOT NULL DEFAULT '[]',   -- JSON list of [epoch, note]
    created REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, owner, seq);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs(owner, created);
CREATE TABLE IF NOT EXISTS job_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = (
    "id, seq, owner, source, request, state, attempts, retries, retry_at, reason, error_title, "
    "error_message, image_id, backend, history, created, updated, finished"
)
#: Runnable now: queued, or waiting whose time has come (``?`` = now).
_RUNNABLE = f"(state = '{QUEUED}' OR (state = '{WAITING}' AND retry_at <= ?))"


class QueueLimitError(SD35Error):
    """A queue is full (the user's ``max_queue`` waiting jobs, or the API's generations at
    once); nothing was stored. ``queue_full`` words it."""

    title = "Queue full"


def queue_full(what: str, advice: str) -> QueueLimitError:
    """The one "queue full" message: what is full, then what to do."""
    return QueueLimitError(f"{QueueLimitError.title}: {what}. {advice}")


@dataclass(frozen=True)
class Job:
    """One stored job. ``request`` is None when the stored request cannot be read (a corrupt
    or foreign row); ``problem`` then says why."""

    id: str
    seq: int
    owner: str | None
    source: str
    request: GenerationRequest | None
    state: str
    attempts: int = 0
    retries: int = 0
    retry_at: float | None = None
    reason: str | None = None
    error_title: str | None = None
    error_message: str | None = None
    image_id: str | None = None
    backend: str | None = None
    history: list[tuple[float, str]] = field(default_factory=list)
    created: float = 0.0
    updated: float = 0.0
    finished: float | None = None
    problem: str | None = None

    @property
    def prompt(self) -> str:
        return self.request.prompt if self.request is not None else ""


def new_job_id() -> str:
    """A short unique id, sortable by creation time (milliseconds, then random)."""
    return f"{int(time.time() * 1000):011x}{secrets.token_hex(4)}"


def _job(row: Sequence[Any]) -> Job:
    (id_, seq, owner, source, request, state, attempts, retries, retry_at, reason, title,
     message, image_id, backend, history, created, updated, finished) = row  # fmt: skip
    problem = None
    parsed: GenerationRequest | None = None
    try:
        data = json.loads(request)
        if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
            raise ValueError("not a request object")
        parsed = GenerationRequest.from_dict(data)
    except (ValueError, TypeError) as error:
        problem = f"The stored request of this job cannot be read ({error})."
    try:
        notes = [(float(at), str(note)) for at, note in json.loads(history or "[]")]
    except (ValueError, TypeError):
        notes = []
    if state not in STATES:
        problem = problem or f"The stored state {state!r} of this job is unknown."
    return Job(
        id=str(id_), seq=int(seq or 0), owner=owner, source=str(source), request=parsed,
        state=str(state), attempts=int(attempts or 0), retries=int(retries or 0),
        retry_at=retry_at, reason=reason, error_title=title, error_message=message,
        image_id=image_id, backend=backend, history=notes, created=float(created or 0),
        updated=float(updated or 0), finished=finished, problem=problem,
    )  # fmt: skip


class JobStore:
    """The ``jobs`` table. Safe to share between threads (one connection, one lock; every
    statement is short)."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.RLock()
        # The gallery's settings (WAL, synchronous NORMAL): a commit survives any crash of the
        # process (SIGKILL included); only a power cut may lose the last few.
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(f"BEGIN; {_SCHEMA} COMMIT;")

    @classmethod
    def for_gallery(cls, store: Any, **kwargs: Any) -> JobStore:
        """The job store in the file of an (already open) ``SQLiteGalleryStore``."""
        return cls(store.index_path, **kwargs)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- adding ----------------------------------------------------------------------------------

    def add(
        self,
        requests: Sequence[GenerationRequest],
        *,
        owner: str | None,
        source: str,
        max_queue: int | None = None,
    ) -> list[Job]:
        """Store one queued job per request (all or none) and return them. With ``max_queue``,
        ``QueueLimitError`` if the owner's pending jobs would exceed it (nothing stored)."""
        now = self.clock()
        rows = []
        with self._transaction() as conn:
            if max_queue is not None:
                pending = conn.execute(
                    "SELECT COUNT(*) FROM jobs WHERE owner IS ? AND state IN (?, ?)",
                    (owner, *PENDING),
                ).fetchone()[0]
                if pending + len(requests) > max_queue:
                    raise queue_full(
                        f"you have {pending} job(s) waiting and the limit is {max_queue}",
                        "Wait for some to finish, or cancel some.",
                    )
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0]
            for request in requests:
                seq += 1
                row = (new_job_id(), seq, owner, source, json.dumps(request.to_dict()), QUEUED,
                       0, 0, None, None, None, None, None, None, "[]", now, now, None)  # fmt: skip
                rows.append(row)
            conn.executemany(f"INSERT INTO jobs ({_COLUMNS}) VALUES ({','.join('?' * 18)})", rows)
        return [_job(row) for row in rows]

    # --- reading ---------------------------------------------------------------------------------

    def get(self, job_id: str, owner: Any = ...) -> Job | None:
        """The job, or None if missing or (when ``owner`` is given) someone else's."""
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
            row = row.fetchone()
        if row is None or (owner is not ... and row[2] != owner):
            return None
        return _job(row)

    def list(
        self,
        owner: Any = ...,
        *,
        states: Sequence[str] | None = None,
        newest_first: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs of ``owner`` (``...``: everyone's), newest first or in queue order."""
        where, args = self._where(owner, states)
        order = "created DESC, seq DESC" if newest_first else "seq"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM jobs{where} ORDER BY {order} LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [_job(row) for row in rows]

    def count(self, owner: Any = ..., *, states: Sequence[str] | None = None) -> int:
        where, args = self._where(owner, states)
        with self._lock:
            return self._conn.execute(f"SELECT COUNT(*) FROM jobs{where}", args).fetchone()[0]

    def counts(self, owner: Any = ...) -> dict[str, int]:
        """How many jobs of ``owner`` are in each state."""
        where, args = self._where(owner, None)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT state, COUNT(*) FROM jobs{where} GROUP BY state", args
            ).fetchall()
        return {state: count for state, count in rows}

    @staticmethod
    def _where(owner: Any, states: Sequence[str] | None) -> tuple[str, tuple[Any, ...]]:
        clauses, args = [], []
        if owner is not ...:
            clauses.append("owner IS ?")
            args.append(owner)
        if states:
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)

    def position(self, job: Job) -> int | None:
        """1-based place of a pending job in its owner's queue (None if not pending)."""
        if job.state not in PENDING:
            return None
        with self._lock:
            ahead = self._conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE owner IS ? AND state IN (?, ?) AND seq < ?",
                (job.owner, *PENDING, job.seq),
            ).fetchone()[0]
        return ahead + 1

    def heads(self, now: float, *, skip_owners: Sequence[str | None] = ()) -> list[Job]:
        """Each owner's first runnable job (queue order), owners in a stable order."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE seq IN (SELECT MIN(seq) FROM jobs "
                f"WHERE {_RUNNABLE} GROUP BY owner)",
                (now,),
            ).fetchall()
        jobs = [_job(row) for row in rows if row[2] not in skip_owners]
        return sorted(jobs, key=lambda job: (job.owner is not None, job.owner or ""))

    def next_due(self) -> float | None:
        """The earliest ``retry_at`` of a waiting job."""
        with self._lock:
            return self._conn.execute(
                "SELECT MIN(retry_at) FROM jobs WHERE state = ?", (WAITING,)
            ).fetchone()[0]

    # --- changing state ----------------------------------------------------------------------

    def _update(
        self, job_id: str, note: str | None, *, only_from: Sequence[str] = (), **values: Any
    ) -> bool:
        """Set ``values`` on the job (if its state is in ``only_from``, when given) and add
        ``note`` to its history; False if nothing matched."""
        now = self.clock()
        values["updated"] = now
        if values.get("state") in FINISHED:
            values.setdefault("finished", now)
        sets = ", ".join(f"{name} = ?" for name in values)
        where = "id = ?"
        args: list[Any] = [*values.values(), job_id]
        if only_from:
            where += f" AND state IN ({','.join('?' * len(only_from))})"
            args.extend(only_from)
        with self._transaction() as conn:
            if note:
                row = conn.execute("SELECT history FROM jobs WHERE id = ?", (job_id,)).fetchone()
                history = _notes(row[0] if row else "[]")
                history.append([round(now, 3), note])
                sets += ", history = ?"
                args.insert(len(values), json.dumps(history[-50:]))
            changed = conn.execute(f"UPDATE jobs SET {sets} WHERE {where}", args).rowcount
        return changed > 0

    def start(self, job_id: str, backend: str) -> bool:
        """Claim a runnable job for ``backend`` (False if it was cancelled meanwhile)."""
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE jobs SET state = ?, attempts = attempts + 1, backend = ?, retry_at = "
                "NULL, reason = NULL, updated = ? WHERE id = ? AND state IN (?, ?)",
                (RUNNING, backend, self.clock(), job_id, *PENDING),
            ).rowcount
        return changed > 0

    def mark_done(self, job_id: str, image_id: str, note: str | None = None) -> bool:
        return self._update(
            job_id, note, state=DONE, image_id=image_id, retries=0, error_title=None,
            error_message=None, retry_at=None, reason=None,
        )  # fmt: skip

    def mark_failed(self, job_id: str, title: str, message: str) -> bool:
        return self._update(
            job_id, f"failed: {title}", state=FAILED, error_title=title, error_message=message,
            retry_at=None, reason=None,
        )  # fmt: skip

    def mark_waiting(
        self, job_id: str, retry_at: float, reason: str, *, retries: int | None = None
    ) -> bool:
        values: dict[str, Any] = {"state": WAITING, "retry_at": retry_at, "reason": reason}
        if retries is not None:
            values["retries"] = retries
        return self._update(job_id, f"waiting: {reason}", only_from=(RUNNING, *PENDING), **values)

    def requeue(self, job_id: str, note: str) -> bool:
        """A running job goes back to the queue (e.g. interrupted by a shutdown)."""
        return self._update(job_id, note, only_from=(RUNNING,), state=QUEUED, retry_at=None)

    def cancel(self, job_id: str, *, include_running: bool = False) -> bool:
        """Cancel a pending job (and a running one only when ``include_running``)."""
        states = (*PENDING, RUNNING) if include_running else PENDING
        return self._update(
            job_id, "cancelled", only_from=states, state=CANCELLED, retry_at=None, reason=None
        )

    def retry(self, job_id: str) -> bool:
        """A failed or cancelled job goes to the end of the queue again."""
        with self._lock:
            seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            return self._update(
                job_id, "retried", only_from=(FAILED, CANCELLED), state=QUEUED, seq=seq,
                retries=0, error_title=None, error_message=None, finished=None,
            )  # fmt: skip

    def move_to_top(self, job_id: str) -> bool:
        """A pending job goes before every other job of its owner."""
        with self._lock:
            seq = self._conn.execute("SELECT COALESCE(MIN(seq), 0) - 1 FROM jobs").fetchone()[0]
            return self._update(job_id, "moved to the top", only_from=PENDING, seq=seq)

    def try_now(self, owner: Any = ...) -> int:
        """Make every waiting job (of ``owner``) due now; returns how many."""
        where, args = self._where(owner, (WAITING,))
        with self._transaction() as conn:
            return conn.execute(
                f"UPDATE jobs SET retry_at = ?, updated = ?{where}",
                (self.clock(), self.clock(), *args),
            ).rowcount

    def clear(self, owner: Any = ...) -> int:
        """Cancel every pending job of ``owner`` and forget its finished ones (their images
        stay); running jobs are left alone. Returns how many rows changed."""
        now = self.clock()
        where, args = self._where(owner, PENDING)
        with self._transaction() as conn:
            changed = conn.execute(
                f"UPDATE jobs SET state = ?, updated = ?, finished = ?, retry_at = NULL{where}",
                (CANCELLED, now, now, *args),
            ).rowcount
            where, args = self._where(owner, FINISHED)
            changed += conn.execute(f"DELETE FROM jobs{where}", args).rowcount
        return changed

    # --- start-up --------------------------------------------------------------------------------

    def recover(self, find_image: Callable[[str], str | None]) -> tuple[int, int]:
        """After a crash: a ``running`` job whose image exists (``find_image(job_id)``) is
        marked done, any other is queued again. Returns (marked done, queued again)."""
        done = requeued = 0
        for job in self.list(states=(RUNNING,), limit=1_000_000):
            image_id = find_image(job.id)
            if image_id:
                self.mark_done(job.id, image_id, "its image was saved before a restart: done")
                done += 1
            else:
                self.requeue(job.id, "interrupted by a restart, queued again")
                requeued += 1
        return done, requeued

    def prune(self, older_than: float = KEEP_FINISHED) -> int:
        """Delete finished rows older than ``older_than`` seconds."""
        cutoff = self.clock() - older_than
        with self._transaction() as conn:
            return conn.execute(
                "DELETE FROM jobs WHERE state IN (?, ?, ?) AND finished < ?", (*FINISHED, cutoff)
            ).rowcount

    # --- settings --------------------------------------------------------------------------------

    def paused_owners(self) -> set[str | None]:
        """Owners who paused their queue (kept across restarts)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM job_settings WHERE key = 'paused'"
            ).fetchone()
        try:
            return set(json.loads(row[0])) if row else set()
        except (ValueError, TypeError):
            return set()

    def set_paused(self, owner: str | None, paused: bool) -> None:
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM job_settings WHERE key = 'paused'").fetchone()
            owners = set(_notes(row[0]) if row else [])
            (owners.add if paused else owners.discard)(owner)
            conn.execute(
                "INSERT OR REPLACE INTO job_settings (key, value) VALUES ('paused', ?)",
                (json.dumps(sorted(owners, key=lambda o: o or "")),),
            )


def _notes(text: str) -> list[Any]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def countdown(seconds: float) -> str:
    """``0:09:48``."""
    seconds = max(0, int(seconds + 0.999))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def waiting_line(retry_at: float, now: float, reason: str | None = None) -> str:
    """ "Waiting for GPU quota: next try at 14:32, in 0:09:48" (or another reason's title)."""
    what = "GPU quota" if not reason or "quota" in reason.lower() else reason.split(":")[0]
    at = datetime.fromtimestamp(retry_at)
    return f"Waiting for {what}: next try at {at:%H:%M}, in {countdown(retry_at - now)}"


def image_finder(gallery_index: Path | str) -> Callable[[str], str | None]:
    """``find_image(job_id)`` for ``JobStore.recover``: the id of the gallery image whose
    metadata names the job, looked up in the gallery's index."""

    def find(job_id: str) -> str | None:
        conn = sqlite3.connect(gallery_index)
        try:
            row = conn.execute(
                f"SELECT id FROM images WHERE json_extract(meta, '$.extra.{JOB_KEY}') = ? LIMIT 1",
                (job_id,),
            ).fetchone()
        except sqlite3.DatabaseError:
            return None
        finally:
            conn.close()
        return row[0] if row else None

    return find
