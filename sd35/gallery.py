"""A persistent gallery that never loses an image and stays fast with thousands of them.

Modelled on InvokeAI's image services: image *files* and image *records* are kept apart, a small
WebP thumbnail sits beside each image, and listing pages in SQL.

Layout under ``root``::

    2026-11-26/20261126-071502-123456-ab12cd.png   the images (the truth: metadata inside)
    .thumbnails/20261126-071502-123456-ab12cd.webp at most 256 px a side
    .index.sqlite3                                 the index (WAL), rebuilt from the PNGs at will

The PNG is written first (atomically, fsynced), then the thumbnail, then the index row. Dying
anywhere in between leaves at worst a PNG without a row, which the next open indexes. Opening
compares a directory listing with the index (one ``scandir`` per day, no PNG is read unless it
is new), drops rows whose PNG vanished, and deletes leftover temporary files of dead writers.
An index that is missing, damaged or of another schema is moved aside and rebuilt from the PNGs'
own metadata; stars (which live only in the index) are salvaged from the old file if it is
readable at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image

from sd35.metadata import (
    TEMP_PREFIX,
    ImageMetadata,
    NotAnImageError,
    atomic_file,
    read_metadata,
    temp_owner,
)
from sd35.png_writer import write_png

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
SCHEMA_VERSION = 1
#: A temporary file is left alone while its writer lives, but not longer than this.
STALE_TEMP_SECONDS = 3600

_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
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


@dataclass(frozen=True)
class StoredImage:
    """One image of the gallery; ``id`` is stable (the file name stem)."""

    id: str
    path: Path
    thumbnail_path: Path
    meta: ImageMetadata
    user: str | None
    created_at: str
    starred: bool = False


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first; ``total`` counts every match."""

    items: list[StoredImage]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass(frozen=True)
class ReconcileReport:
    """What an open (or :meth:`SQLiteGalleryStore.reconcile`) found and fixed."""

    indexed: int = 0
    dropped: int = 0
    temp_removed: int = 0
    thumbnails_removed: int = 0
    skipped: list[str] = field(default_factory=list)
    rebuilt: bool = False
    seconds: float = 0.0


class GalleryStore(ABC):
    """Where generated images live. ``user=None`` means every user (single-user server)."""

    @abstractmethod
    def save(
        self,
        image: Image.Image,
        meta: ImageMetadata,
        user: str | None = None,
        *,
        thumbnail: bool = True,
    ) -> StoredImage:
        """Store ``image`` with ``meta``, owned by ``user`` (``thumbnail=False``: lazily)."""

    @abstractmethod
    def get(self, image_id: str, user: str | None = None) -> StoredImage | None:
        """The image, or None if it does not exist or belongs to another user."""

    @abstractmethod
    def list(
        self,
        *,
        user: str | None = None,
        search: str | None = None,
        starred: bool | None = None,
        offset: int = 0,
        limit: int = 48,
    ) -> Page:
        """A page of images, newest first."""

    @abstractmethod
    def delete(self, image_id: str, user: str | None = None) -> bool:
        """Remove the image, its thumbnail and its record; False if there was none."""

    @abstractmethod
    def set_starred(self, image_id: str, starred: bool, user: str | None = None) -> bool:
        """Star or unstar; False if there is no such image (for this user)."""

    @abstractmethod
    def count(self, user: str | None = None) -> int:
        """How many images ``user`` (or everyone) has."""

    @abstractmethod
    def write_zip(
        self, ids: Iterable[str], dest: Path | None = None, user: str | None = None
    ) -> Path:
        """A zip of the original PNGs; unknown ids (or other users') are skipped."""

    @abstractmethod
    def prompt_history(self, limit: int = 50, user: str | None = None) -> list[str]:
        """Distinct prompts, most recently used first."""

    @abstractmethod
    def ensure_thumbnail(self, image_id: str, user: str | None = None) -> Path | None:
        """The image's thumbnail, made first if missing; None if there is no such image."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the store holds open."""


@dataclass(frozen=True)
class Reservation:
    """An image's id and PNG path, chosen before it is saved (so a caller can name it while
    the PNG is still being written); pass it to ``save``."""

    id: str
    stamp: datetime
    path: Path


class _IdClock:
    """Image ids that sort in creation order, even for several saves within a microsecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = datetime.min

    def next(self) -> tuple[str, datetime]:
        with self._lock:
            stamp = max(datetime.now(), self._last + timedelta(microseconds=1))
            self._last = stamp
        return f"{stamp:%Y%m%d-%H%M%S-%f}-{secrets.token_hex(3)}", stamp


_clock = _IdClock()


def new_image_id() -> tuple[str, datetime]:
    """A fresh image id (``YYYYMMDD-HHMMSS-ffffff-xxxxxx``, local time) and its timestamp."""
    return _clock.next()


class SQLiteGalleryStore(GalleryStore):
    """The gallery in a directory, indexed by SQLite. Safe to share between threads."""

    def __init__(self, root: Path | str) -> None:
        started = time.perf_counter()
        self.root = Path(root).resolve()
        self.thumbnails_dir = self.root / ".thumbnails"
        self.index_path = self.root / ".index.sqlite3"
        self.thumbnails_dir.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: every query is short, and it lets rebuild swap the
        # index file without chasing per-thread connections. PNG/WebP encoding (the slow part
        # of save) happens outside the lock.
        self._lock = threading.RLock()
        self._conn, salvaged, rebuilt = self._open_index()
        report = self.reconcile()
        if salvaged:
            self._restore_stars(salvaged)
        self.last_open = ReconcileReport(
            indexed=report.indexed,
            dropped=report.dropped,
            temp_removed=report.temp_removed,
            thumbnails_removed=report.thumbnails_removed,
            skipped=report.skipped,
            rebuilt=rebuilt,
            seconds=time.perf_counter() - started,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteGalleryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.index_path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file;
        # and the PNGs can always restore what was lost.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _open_index(self) -> tuple[sqlite3.Connection, set[str], bool]:
        """Open (or create) the index; a damaged one is moved aside and replaced by a fresh one.

        Returns the connection, the starred ids salvaged from a damaged index, and whether the
        index was (re)created (so every PNG will be indexed anew).
        """
        if not self.index_path.exists():
            # WAL/SHM files without their database belong to a deleted index: SQLite would
            # replay that WAL into the new file.
            for suffix in ("-wal", "-shm"):
                Path(f"{self.index_path}{suffix}").unlink(missing_ok=True)
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
            if self._check_schema(conn):
                return conn, set(), False
            self._create_schema(conn)
            return conn, set(), True
        except sqlite3.DatabaseError as error:
            if conn is not None:
                conn.close()
            log.warning("gallery index %s is unusable (%s); rebuilding", self.index_path, error)
            aside = self._move_index_aside()
            salvaged = _salvage_stars(aside) if aside else set()
            conn = self._connect()
            self._create_schema(conn)
            return conn, salvaged, True

    def _check_schema(self, conn: sqlite3.Connection) -> bool:
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

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def _move_index_aside(self) -> Path | None:
        """Rename the index and its WAL/SHM files out of the way (a stale WAL must never be
        replayed into the fresh index)."""
        tag = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        aside: Path | None = None
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.index_path}{suffix}")
            if source.exists():
                target = Path(f"{self.index_path}.broken-{tag}{suffix}")
                os.replace(source, target)
                if not suffix:
                    aside = target
        return aside

    def _restore_stars(self, ids: set[str]) -> None:
        with self._lock, self._transaction():
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

    # --- reconciliation -------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Make the index match the PNGs on disk and remove leftovers of interrupted writes.

        Cheap when nothing changed: one directory listing per day and one query of all ids.
        """
        started = time.perf_counter()
        with self._lock:
            on_disk, temp_removed = self._scan_images()
            indexed = dict(self._conn.execute("SELECT id, rel_path FROM images").fetchall())
            dropped = [i for i, rel in indexed.items() if on_disk.get(i) != rel]
            new = [i for i, rel in on_disk.items() if indexed.get(i) != rel]
            rows: list[tuple[Any, ...]] = []
            skipped: list[str] = []
            for image_id in sorted(new):
                row = self._row_from_file(image_id, on_disk[image_id])
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
        thumbs_removed, thumb_temp_removed = self._clean_thumbnails(set(on_disk))
        return ReconcileReport(
            indexed=len(rows),
            dropped=len(dropped),
            temp_removed=temp_removed + thumb_temp_removed,
            thumbnails_removed=thumbs_removed,
            skipped=skipped,
            seconds=time.perf_counter() - started,
        )

    def rebuild_index(self) -> int:
        """Re-read every PNG's metadata into a cleared index (stars kept); returns the count."""
        with self._lock:
            starred = {
                row[0] for row in self._conn.execute("SELECT id FROM images WHERE starred = 1")
            }
            with self._transaction():
                self._conn.execute("DELETE FROM images")
            self.reconcile()
            self._restore_stars(starred)
            return self.count()

    def _scan_images(self) -> tuple[dict[str, str], int]:
        """Every PNG in a day folder (id → relative path), deleting stale temporary files."""
        found: dict[str, str] = {}
        removed = 0
        with os.scandir(self.root) as entries:
            days = []
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    removed += _remove_if_stale(entry)
                elif _DAY_DIR.match(entry.name) and entry.is_dir():
                    if entry.is_symlink() and not self._inside(entry.path):
                        log.warning("ignoring %s: a link to outside the gallery", entry.name)
                        continue
                    days.append(entry.name)
        for day in days:
            with os.scandir(self.root / day) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith(TEMP_PREFIX):
                        removed += _remove_if_stale(entry)
                    elif name.lower().endswith(".png") and entry.is_file():
                        if entry.is_symlink() and not self._inside(entry.path):
                            log.warning("ignoring %s/%s: a link to outside the gallery", day, name)
                            continue
                        image_id = name[:-4]
                        if image_id in found:
                            log.warning("duplicate image id %s ignored: %s/%s", image_id, day, name)
                            continue
                        found[image_id] = f"{day}/{name}"
        return found, removed

    def _clean_thumbnails(self, ids: set[str]) -> tuple[int, int]:
        orphans = temps = 0
        with os.scandir(self.thumbnails_dir) as entries:
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    temps += _remove_if_stale(entry)
                elif entry.name.endswith(".webp") and entry.name[:-5] not in ids:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        orphans += 1
        return orphans, temps

    def _inside(self, path: str | Path) -> bool:
        """True when ``path`` (links resolved) is inside the gallery's folder."""
        real = Path(os.path.realpath(path))
        root = Path(os.path.realpath(self.root))
        return real == root or root in real.parents

    def _row_from_file(self, image_id: str, rel_path: str) -> tuple[Any, ...] | None:
        path = self.root / rel_path
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
            _created_from_id(image_id) or _created_from_mtime(path),
            owner if isinstance(owner, str) else None,
            meta,
        )

    # --- the store ------------------------------------------------------------------------------

    def save(
        self,
        image: Image.Image,
        meta: ImageMetadata,
        user: str | None = None,
        *,
        thumbnail: bool = True,
        reservation: Reservation | None = None,
    ) -> StoredImage:
        """Write the PNG (atomic, fsynced), then the thumbnail, then the index row.

        ``thumbnail=False`` leaves the thumbnail to the first listing that shows it
        (:meth:`ensure_thumbnail`): a generation's result is then stored sooner, and an image
        nobody browses to never costs one. ``reservation`` (from :meth:`reserve`) fixes the
        id and path in advance."""
        # The owner goes into the PNG too, so that a rebuild restores ownership.
        meta = meta.with_extra(user=user)
        planned = reservation or self.reserve()
        image_id, stamp = planned.id, planned.stamp
        day = planned.path.parent
        day.mkdir(exist_ok=True)
        path = write_png(image, planned.path, meta)
        if thumbnail:
            try:
                self._write_thumbnail(image, image_id)
            except (OSError, ValueError) as error:  # a thumbnail can be made again later
                log.warning("thumbnail for %s failed: %s", image_id, error)
        created = stamp.astimezone().isoformat(timespec="seconds")
        rel_path = f"{day.name}/{path.name}"
        with self._lock, self._transaction():
            self._conn.execute(_UPSERT, _row(image_id, rel_path, created, user, meta))
        return StoredImage(
            id=image_id,
            path=path,
            thumbnail_path=self._thumbnail_path(image_id),
            meta=meta,
            user=user,
            created_at=created,
        )

    def reserve(self) -> Reservation:
        """A fresh id and the path its PNG will have (nothing is written yet)."""
        image_id, stamp = new_image_id()
        return Reservation(image_id, stamp, self.root / f"{stamp:%Y-%m-%d}" / f"{image_id}.png")

    def get(self, image_id: str, user: str | None = None) -> StoredImage | None:
        with self._lock:
            row = self._conn.execute(f"{_SELECT} WHERE id = ?", (image_id,)).fetchone()
        if row is None or (user is not None and row[3] != user):
            return None
        return self._stored(row)

    def list(
        self,
        *,
        user: str | None = None,
        search: str | None = None,
        starred: bool | None = None,
        offset: int = 0,
        limit: int = 48,
    ) -> Page:
        """A page of images, newest first (``search``: case-insensitive substring of prompt)."""
        offset, limit = max(0, int(offset)), max(0, int(limit))
        where: list[str] = []
        args: list[Any] = []
        if user is not None:
            where.append("owner = ?")
            args.append(user)
        if starred is not None:
            where.append("starred = 1" if starred else "starred = 0")
        if search and search.strip():
            # LIKE, not FTS: substring matches (also inside CJK text, which FTS tokenizers do
            # not split), and a scan of 10,000 short prompts takes a few milliseconds.
            where.append("prompt_folded LIKE ? ESCAPE '\\'")
            args.append(f"%{_like_escape(search.strip().casefold())}%")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            total = self._conn.execute(f"SELECT COUNT(*) FROM images{clause}", args).fetchone()[0]
            rows = self._conn.execute(
                f"{_SELECT}{clause} ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset]
            ).fetchall()
        return Page(items=[self._stored(r) for r in rows], total=total, offset=offset, limit=limit)

    def delete(self, image_id: str, user: str | None = None) -> bool:
        with self._lock:
            item = self.get(image_id, user)
            if item is None:
                return False
            # The PNG goes first: a crash after this leaves a row without PNG, which the next
            # open drops. The other order could bring a deleted image back.
            item.path.unlink(missing_ok=True)
            item.thumbnail_path.unlink(missing_ok=True)
            with self._transaction():
                self._conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
            return True

    def set_starred(self, image_id: str, starred: bool, user: str | None = None) -> bool:
        sql = "UPDATE images SET starred = ? WHERE id = ?"
        args: list[Any] = [int(bool(starred)), image_id]
        if user is not None:
            sql += " AND owner = ?"
            args.append(user)
        with self._lock:
            return self._conn.execute(sql, args).rowcount > 0

    def count(self, user: str | None = None) -> int:
        with self._lock:
            if user is None:
                return self._conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            return self._conn.execute(
                "SELECT COUNT(*) FROM images WHERE owner = ?", (user,)
            ).fetchone()[0]

    def write_zip(
        self, ids: Iterable[str], dest: Path | None = None, user: str | None = None
    ) -> Path:
        """Zip the original PNGs byte for byte (stored, not recompressed: PNG is compressed)."""
        if dest is None:
            handle, name = tempfile.mkstemp(prefix="sd35-images-", suffix=".zip")
            os.close(handle)
            dest = Path(name)
        dest = Path(dest)
        found = (self.get(image_id, user) for image_id in dict.fromkeys(ids))
        items = [item for item in found if item is not None]
        with (
            atomic_file(dest, durable=False) as handle,
            zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive,
        ):
            for item in items:
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    archive.write(item.path, arcname=item.path.name)
        return dest

    def prompt_history(self, limit: int = 50, user: str | None = None) -> list[str]:
        where = "WHERE prompt != ''" + (" AND owner = ?" if user is not None else "")
        args: list[Any] = [user] if user is not None else []
        with self._lock:
            rows = self._conn.execute(
                f"SELECT prompt, MAX(id) AS last FROM images {where} "
                "GROUP BY prompt ORDER BY last DESC LIMIT ?",
                [*args, max(0, int(limit))],
            ).fetchall()
        return [row[0] for row in rows]

    def ensure_thumbnail(self, image_id: str, user: str | None = None) -> Path | None:
        """The thumbnail's path, making it first if it is missing (e.g. after a rebuild)."""
        item = self.get(image_id, user)
        if item is None:
            return None
        if not item.thumbnail_path.exists():
            try:
                with Image.open(item.path) as image:
                    self._write_thumbnail(image, image_id)
            except (OSError, ValueError) as error:
                log.warning("thumbnail for %s failed: %s", image_id, error)
                return None
        return item.thumbnail_path

    # --- helpers --------------------------------------------------------------------------------

    def _thumbnail_path(self, image_id: str) -> Path:
        return self.thumbnails_dir / f"{image_id}.webp"

    def _write_thumbnail(self, image: Image.Image, image_id: str) -> Path:
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        thumb = image.convert("RGBA" if has_alpha else "RGB")
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
        path = self._thumbnail_path(image_id)
        # Not fsynced: a lost thumbnail is simply made again.
        with atomic_file(path, durable=False) as handle:
            thumb.save(handle, format="WEBP", quality=80, method=4)
        return path

    def _stored(self, row: Sequence[Any]) -> StoredImage:
        image_id, rel_path, created_at, owner, prompt, meta_json, starred = row
        try:
            meta = ImageMetadata.from_json(meta_json)
        except (ValueError, TypeError):
            meta = ImageMetadata(prompt=prompt, space="", created_at="")
        return StoredImage(
            id=image_id,
            path=self.root / rel_path,
            thumbnail_path=self._thumbnail_path(image_id),
            meta=meta,
            user=owner,
            created_at=created_at,
            starred=bool(starred),
        )


_SELECT = "SELECT id, rel_path, created_at, owner, prompt, meta, starred FROM images"
_UPSERT = (
    "INSERT INTO images (id, rel_path, created_at, owner, prompt, prompt_folded, meta) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET rel_path = excluded.rel_path, "
    "created_at = excluded.created_at, owner = excluded.owner, prompt = excluded.prompt, "
    "prompt_folded = excluded.prompt_folded, meta = excluded.meta"
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


#: The last 12 bytes of every complete PNG: the IEND chunk (length 0, type, CRC).
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def png_is_whole(path: Path) -> bool:
    """True when the file ends with a PNG's closing chunk (a cut-off write does not)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-len(_PNG_END), os.SEEK_END)
            return handle.read() == _PNG_END
    except OSError:
        return False


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


def _created_from_mtime(path: Path) -> str:
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = time.time()
    return datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds")


def _remove_if_stale(entry: os.DirEntry[str]) -> int:
    """Delete a temporary file unless its writer may still be writing it; 1 if deleted."""
    pid = temp_owner(entry.name)
    if pid is not None and _process_alive(pid):
        try:
            if time.time() - entry.stat().st_mtime < STALE_TEMP_SECONDS:
                return 0
        except FileNotFoundError:
            return 0
    try:
        os.unlink(entry.path)
    except FileNotFoundError:
        return 0
    except IsADirectoryError:
        return 0
    return 1


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        # os.kill(pid, 0) would send CTRL_C_EVENT on Windows; fall back to the age rule.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
