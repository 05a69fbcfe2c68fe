"""Jobs pinned to one backend: a small table of its own beside the queue's ``jobs`` table (in
the same SQLite file), so a pin survives a restart like the job itself."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS job_pins (job_id TEXT PRIMARY KEY, backend TEXT NOT NULL)"


class JobPins:
    """``job id -> backend name``. Thread-safe; every statement is short."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.execute(_SCHEMA)

    def pin(self, job_ids: Iterable[str], backend: str) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO job_pins (job_id, backend) VALUES (?, ?)",
                [(job_id, backend) for job_id in job_ids],
            )

    def get(self, job_id: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT backend FROM job_pins WHERE job_id = ?", (job_id,)
            ).fetchone()
        return str(row[0]) if row else None

    def prune(self) -> None:
        """Forget pins of jobs that no longer exist."""
        with self._lock:
            self._conn.execute("DELETE FROM job_pins WHERE job_id NOT IN (SELECT id FROM jobs)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
