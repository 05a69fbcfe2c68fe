"""The gallery's image index: one SQLite table of image records, its recovery, its queries.

The second of the gallery's three parts (docs/architecture.md, "storage"). The PNGs are the
truth; this index is a copy of what is in them (plus stars, which live only here), made to
list, search and page quickly. It is rebuilt from the PNGs whenever it is missing, damaged or
of another schema: the old file is moved aside, stars are salvaged from it if it can still be
read, and every PNG's own metadata is read again (:meth:`ImageIndex.sync`).

One connection guarded by a lock: every query is short, and it lets a rebuild swap the file
without chasing per-thread connections.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sd35.image_files import created_from_mtime, png_is_whole
from sd35.metadata import ImageMetadata, NotAnImageError, read_metadata

log = logging.getLogger("sd35.gallery")

SCHEMA_VERSION = 1

_ID = re.compile(r"^(\d{8}-\d{6}-\d{6})-[0-9a-f]+$")
_COLUMNS = ("id", "rel_path", "created_at", "owner", "prompt", "prompt_folded", "meta", "starred")
_SCHEMA = """
CREATE TABLE images (
    id TEXT PRIMARY KEY,            -- file name stem; sorts by creation time
    rel_path TEXT NOT NULL,         -- PNG path relative to the root, with '/'
    created_at TEXT NOT NULL,       -- when it was saved (ISO 8601)
    owner TEXT,                     -- NULL: no owner (single-user server)
    prompt TEXT NOT NULL,
    prompt_folded TEXT NOT NULL,    -- casefold()ed prompt: SQLite's LIKE folds ASCII only
    meta TEXT NOT NULL,             -- ImageMetadata JSON, a copy of the PNG's sd35 chunk
    starred INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX images_owner ON images(owner, id);
CREATE INDEX images_starred ON images(id) WHERE starred = 1;
"""
_SELECT = "SELECT id, rel_path, created_at, owner, prompt, meta, starred FROM images"
_UPSERT = (
    "INSERT INTO images (id, rel_path, created_at, owner, prompt, prompt_folded, meta) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET rel_path = excluded.rel_path, "
    "created_at = excluded.created_at, owner = excluded.owner, prompt = excluded.prompt, "
    "prompt_folded = excluded.prompt_folded, meta = excluded.meta"
)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the gallery's SQLite file as every part of sd35 opens it: shared between
    threads (callers lock), autocommit, WAL, waiting up to 5 s for another writer."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file;
    # and the PNGs can always restore what was lost.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


#: One row as the façade gets it: id, PNG path relative to the root, created_at, owner, the
#: metadata, starred.
Record = tuple[str, str, str, "str | None", ImageMetadata, bool]


@dataclass(frozen=True)
class SyncResult:
    """What :meth:`ImageIndex.sync` changed."""

    indexed: int
    dropped: int
    skipped: list[str]


class ImageIndex:
    """The ``images`` table in the SQLite file at ``path``. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Held by every query; a caller holds it across steps that must not interleave with
        #: other writers (a directory scan and the :meth:`sync` of its result).
        self.lock = threading.RLock()
        #: Starred ids salvaged from a damaged index (restore them after :meth:`sync`).
        self.salvaged: set[str] = set()
        #: Whether the index was (re)created, so every PNG will be indexed anew.
        self.rebuilt = False
        self._conn = self._open()

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    # --- opening and recovery ---

    def _open(self) -> sqlite3.Connection:
        """Open (or create) the index; a damaged one is moved aside and replaced by a fresh one."""
        if not self.path.exists():
            # WAL/SHM files without their database belong to a deleted index: SQLite would
            # replay that WAL into the new file.
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        conn: sqlite3.Connection | None = None
        try:
            conn = connect(self.path)
            if _check_schema(conn):
                return conn
            _create_schema(conn)
            self.rebuilt = True
            return conn
        except sqlite3.DatabaseError as error:
            if conn is not None:
                conn.close()
            log.warning("gallery index %s is unusable (%s); rebuilding", self.path, error)
            aside = self._move_aside()
            self.salvaged = _salvage_stars(aside) if aside else set()
            conn = connect(self.path)
            _create_schema(conn)
            self.rebuilt = True
            return conn

    def _move_aside(self) -> Path | None:
        """Rename the index and its WAL/SHM files out of the way (a stale WAL must never be
        replayed into the fresh index)."""
        tag = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        aside: Path | None = None
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                target = Path(f"{self.path}.broken-{tag}{suffix}")
                os.replace(source, target)
                if not suffix:
                    aside = target
        return aside

    def sync(self, on_disk: dict[str, str], root: Path) -> SyncResult:
        """Make the index match ``on_disk`` (id → PNG path relative to ``root``): drop rows
        whose PNG is gone or moved, index PNGs it lacks from their own metadata."""
        with self.lock:
            indexed = dict(self._conn.execute("SELECT id, rel_path FROM images").fetchall())
            dropped = [i for i, rel in indexed.items() if on_disk.get(i) != rel]
            new = [i for i, rel in on_disk.items() if indexed.get(i) != rel]
            rows: list[tuple[Any, ...]] = []
            skipped: list[str] = []
            for image_id in sorted(new):
                row = _row_from_file(root, image_id, on_disk[image_id])
                if row is None:
                    skipped.append(on_disk[image_id])
                else:
                    rows.append(row)
            if dropped or rows:
                with self._transaction():
                    self._conn.executemany(
                        "DELETE FROM images WHERE id = ?", [(i,) for i in dropped]
                    )
                    self._conn.executemany(_UPSERT, rows)
        return SyncResult(indexed=len(rows), dropped=len(dropped), skipped=skipped)

    def clear(self) -> set[str]:
        """Empty the index; returns the starred ids (to restore after a re-read)."""
        with self.lock:
            starred = self.starred_ids()
            with self._transaction():
                self._conn.execute("DELETE FROM images")
            return starred

    def starred_ids(self) -> set[str]:
        with self.lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM images WHERE starred = 1")}

    def restore_stars(self, ids: set[str]) -> None:
        with self.lock, self._transaction():
            self._conn.executemany(
                "UPDATE images SET starred = 1 WHERE id = ?", [(i,) for i in ids]
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # --- records ---

    def put(
        self, image_id: str, rel_path: str, created: str, owner: str | None, meta: ImageMetadata
    ) -> None:
        """Add (or replace) one image's row, committed when this returns."""
        with self.lock, self._transaction():
            self._conn.execute(_UPSERT, _row(image_id, rel_path, created, owner, meta))

    def get(self, image_id: str) -> Record | None:
        with self.lock:
            row = self._conn.execute(f"{_SELECT} WHERE id = ?", (image_id,)).fetchone()
        return None if row is None else _record(row)

    def delete(self, image_id: str) -> None:
        with self.lock, self._transaction():
            self._conn.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def set_starred(self, image_id: str, starred: bool, owner: str | None = None) -> bool:
        sql = "UPDATE images SET starred = ? WHERE id = ?"
        args: list[Any] = [int(bool(starred)), image_id]
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        with self.lock:
            return self._conn.execute(sql, args).rowcount > 0

    # --- queries ---

    def page(
        self,
        *,
        owner: str | None,
        search: str | None,
        starred: bool | None,
        offset: int,
        limit: int,
    ) -> tuple[list[Record], int]:
        """Records newest first and how many match in all (``search``: case-insensitive
        substring of the prompt)."""
        where: list[str] = []
        args: list[Any] = []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if starred is not None:
            where.append("starred = 1" if starred else "starred = 0")
        if search and search.strip():
            # LIKE, not FTS: substring matches (also inside CJK text, which FTS tokenizers do
            # not split), and a scan of 10,000 short prompts takes a few milliseconds.
            where.append("prompt_folded LIKE ? ESCAPE '\\'")
            args.append(f"%{_like_escape(search.strip().casefold())}%")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.lock:
            total = self._conn.execute(f"SELECT COUNT(*) FROM images{clause}", args).fetchone()[0]
            rows = self._conn.execute(
                f"{_SELECT}{clause} ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset]
            ).fetchall()
        return [_record(r) for r in rows], total

    def count(self, owner: str | None = None) -> int:
        with self.lock:
            if owner is None:
                return self._conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            return self._conn.execute(
                "SELECT COUNT(*) FROM images WHERE owner = ?", (owner,)
            ).fetchone()[0]

    def prompt_history(self, limit: int, owner: str | None = None) -> list[str]:
        """Distinct non-empty prompts, most recently used first."""
        where = "WHERE prompt != ''" + (" AND owner = ?" if owner is not None else "")
        args: list[Any] = [owner] if owner is not None else []
        with self.lock:
            rows = self._conn.execute(
                f"SELECT prompt, MAX(id) AS last FROM images {where} "
                "GROUP BY prompt ORDER BY last DESC LIMIT ?",
                [*args, max(0, int(limit))],
            ).fetchall()
        return [row[0] for row in rows]


def _check_schema(conn: sqlite3.Connection) -> bool:
    """True if the index is sound and ours; False if it is empty (new); raises otherwise."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if not tables and version == 0:
        return False
    if version != SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"schema version {version}, expected {SCHEMA_VERSION}")
    columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(images)"))
    if columns != _COLUMNS:
        raise sqlite3.DatabaseError(f"unexpected columns {columns}")
    result = conn.execute("PRAGMA quick_check").fetchall()
    if result != [("ok",)]:
        raise sqlite3.DatabaseError(f"integrity check failed: {result[:3]}")
    return True


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")


def _salvage_stars(index: Path) -> set[str]:
    """Starred ids from a damaged index, as far as it can still be read."""
    try:
        conn = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return {row[0] for row in conn.execute("SELECT id FROM images WHERE starred = 1")}
        finally:
            conn.close()
    except sqlite3.Error:
        return set()


def _row_from_file(root: Path, image_id: str, rel_path: str) -> tuple[Any, ...] | None:
    path = root / rel_path
    if not png_is_whole(path):
        log.warning("not indexing %s: the PNG is truncated (cut off before its end)", path)
        return None
    try:
        meta = read_metadata(path)
    except (NotAnImageError, OSError) as error:
        log.warning("not indexing %s: %s", path, error)
        return None
    if meta is None:  # an image without metadata still belongs in the gallery
        meta = ImageMetadata(prompt="", space="", created_at="")
    owner = meta.extra.get("user")
    return _row(
        image_id,
        rel_path,
        _created_from_id(image_id) or created_from_mtime(path),
        owner if isinstance(owner, str) else None,
        meta,
    )


def _row(
    image_id: str, rel_path: str, created_at: str, owner: str | None, meta: ImageMetadata
) -> tuple[Any, ...]:
    return (
        image_id,
        rel_path,
        created_at,
        owner,
        meta.prompt,
        meta.prompt.casefold(),
        meta.to_json(),
    )


def _record(row: Sequence[Any]) -> Record:
    image_id, rel_path, created_at, owner, prompt, meta_json, starred = row
    try:
        meta = ImageMetadata.from_json(meta_json)
    except (ValueError, TypeError):
        meta = ImageMetadata(prompt=prompt, space="", created_at="")
    return image_id, rel_path, created_at, owner, meta, bool(starred)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _created_from_id(image_id: str) -> str | None:
    match = _ID.match(image_id)
    if match is None:
        return None
    try:
        stamp = datetime.strptime(match[1], "%Y%m%d-%H%M%S-%f")
    except ValueError:
        return None
    return stamp.astimezone().isoformat(timespec="seconds")
