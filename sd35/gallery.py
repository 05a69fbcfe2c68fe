"""A persistent gallery that never loses an image and stays fast with thousands of them.

Modelled on InvokeAI's image services, in three parts (docs/architecture.md, "storage"):

* :mod:`sd35.image_files`: the image *files* — day folders, atomic writes, PNG writing,
  thumbnails;
* :mod:`sd35.image_index`: the image *records* — the SQLite index, its recovery from the PNGs,
  the queries that list pages;
* this module: :class:`SQLiteGalleryStore`, the façade callers use, which owns the order of
  writes.

Layout under ``root``::

    2026-11-26/20261126-071502-123456-ab12cd.png   the images (the truth: metadata inside)
    .thumbnails/20261126-071502-123456-ab12cd.webp at most 256 px a side
    .index.sqlite3                                 the index (WAL), rebuilt from the PNGs at will

The PNG is written first (atomically, fsynced), then the index row, then (if asked for) the
thumbnail. Dying anywhere in between leaves at worst a PNG without a row, which the next open
indexes, or a row without a thumbnail, which the first listing that shows it makes. Opening
compares a directory listing with the index (one ``scandir`` per day, no PNG is read unless it
is new), drops rows whose PNG vanished, and deletes leftover temporary files of dead writers.
An index that is missing, damaged or of another schema is moved aside and rebuilt from the PNGs'
own metadata; stars (which live only in the index) are salvaged from the old file if it is
readable at all.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from sd35.image_files import ImageFiles, Reservation, new_image_id
from sd35.image_index import ImageIndex, Record
from sd35.metadata import ImageMetadata

__all__ = [
    "Page",
    "ReconcileReport",
    "Reservation",
    "SQLiteGalleryStore",
    "StoredImage",
    "new_image_id",
]


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


class SQLiteGalleryStore:
    """The gallery in a directory, indexed by SQLite. Safe to share between threads.
    ``user=None`` means every user (single-user server)."""

    def __init__(self, root: Path | str) -> None:
        started = time.perf_counter()
        self.files = ImageFiles(root)
        self.root = self.files.root
        self.thumbnails_dir = self.files.thumbnails_dir
        self.index_path = self.root / ".index.sqlite3"
        self.index = ImageIndex(self.index_path)
        report = self.reconcile()
        if self.index.salvaged:
            self.index.restore_stars(self.index.salvaged)
        self.last_open = dataclasses.replace(
            report, rebuilt=self.index.rebuilt, seconds=time.perf_counter() - started
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the store holds open."""
        self.index.close()

    def __enter__(self) -> SQLiteGalleryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reconciliation -------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Make the index match the PNGs on disk and remove leftovers of interrupted writes.

        Cheap when nothing changed: one directory listing per day and one query of all ids.
        """
        started = time.perf_counter()
        with self.index.lock:  # no save's row may land between the listing and the sync
            on_disk, temp_removed = self.files.scan()
            synced = self.index.sync(on_disk, self.root)
        thumbs_removed, thumb_temp_removed = self.files.clean_thumbnails(set(on_disk))
        return ReconcileReport(
            indexed=synced.indexed,
            dropped=synced.dropped,
            temp_removed=temp_removed + thumb_temp_removed,
            thumbnails_removed=thumbs_removed,
            skipped=synced.skipped,
            seconds=time.perf_counter() - started,
        )

    def rebuild_index(self) -> int:
        """Re-read every PNG's metadata into a cleared index (stars kept); returns the count."""
        with self.index.lock:
            starred = self.index.clear()
            self.reconcile()
            self.index.restore_stars(starred)
            return self.count()

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
        """Store ``image`` with ``meta``, owned by ``user``: the PNG (atomic, fsynced), then
        the index row, then the thumbnail.

        ``thumbnail=False`` leaves the thumbnail to the first listing that shows it
        (:meth:`ensure_thumbnail`): a generation's result is then stored sooner, and an image
        nobody browses to never costs one. ``reservation`` (from :meth:`reserve`) fixes the
        id and path in advance."""
        planned = reservation or self.reserve()
        meta = _owned(meta, user)
        self.files.write_image(image, planned.path, meta)
        stored = self._index(planned, meta, user)
        if thumbnail:
            self.files.try_thumbnail(image, planned.id)
        return stored

    def save_encoded(
        self,
        data: bytes,
        meta: ImageMetadata,
        user: str | None = None,
        *,
        reservation: Reservation | None = None,
    ) -> StoredImage:
        """Store an image that came encoded (a backend's PNG, JPEG or WebP) as :meth:`save`
        does, without a thumbnail. A PNG is not decoded: ``meta``'s chunks are spliced into
        its bytes, the pixels stay exactly the backend's."""
        planned = reservation or self.reserve()
        meta = _owned(meta, user)
        self.files.write_encoded(data, planned.path, meta)
        return self._index(planned, meta, user)

    def _index(self, planned: Reservation, meta: ImageMetadata, user: str | None) -> StoredImage:
        created = planned.stamp.astimezone().isoformat(timespec="seconds")
        self.index.put(planned.id, self.files.rel_path(planned.path), created, user, meta)
        return StoredImage(
            id=planned.id,
            path=planned.path,
            thumbnail_path=self.files.thumbnail_path(planned.id),
            meta=meta,
            user=user,
            created_at=created,
        )

    def reserve(self) -> Reservation:
        """A fresh id and the path its PNG will have (nothing is written yet)."""
        return self.files.reserve()

    def get(self, image_id: str, user: str | None = None) -> StoredImage | None:
        """The image, or None if it does not exist or belongs to another user."""
        record = self.index.get(image_id)
        if record is None:
            return None
        stored = self._stored(record)
        return stored if user is None or stored.user == user else None

    def list(
        self,
        *,
        user: str | None = None,
        search: str | None = None,
        starred: bool | None = None,
        offset: int = 0,
        limit: int = 48,
    ) -> Page:
        """A page of images, newest first (``search``: case-insensitive substring of prompt).
        Reads the index only: no PNG is opened, no thumbnail made."""
        offset, limit = max(0, int(offset)), max(0, int(limit))
        records, total = self.index.page(
            owner=user, search=search, starred=starred, offset=offset, limit=limit
        )
        items = [self._stored(r) for r in records]
        return Page(items=items, total=total, offset=offset, limit=limit)

    def delete(self, image_id: str, user: str | None = None) -> bool:
        """Remove the image, its thumbnail and its record; False if there was none."""
        with self.index.lock:
            item = self.get(image_id, user)
            if item is None:
                return False
            # The PNG goes first: a crash after this leaves a row without PNG, which the next
            # open drops. The other order could bring a deleted image back.
            self.files.delete(image_id, item.path)
            self.index.delete(image_id)
            return True

    def set_starred(self, image_id: str, starred: bool, user: str | None = None) -> bool:
        """Star or unstar; False if there is no such image (for this user)."""
        return self.index.set_starred(image_id, starred, user)

    def count(self, user: str | None = None) -> int:
        """How many images ``user`` (or everyone) has."""
        return self.index.count(user)

    def write_zip(
        self, ids: Iterable[str], dest: Path | None = None, user: str | None = None
    ) -> Path:
        """A zip of the original PNGs, byte for byte; unknown ids (or other users') are
        skipped."""
        if dest is None:
            handle, name = tempfile.mkstemp(prefix="sd35-images-", suffix=".zip")
            os.close(handle)
            dest = Path(name)
        found = (self.get(image_id, user) for image_id in dict.fromkeys(ids))
        return self.files.write_zip([i.path for i in found if i is not None], Path(dest))

    def prompt_history(self, limit: int = 50, user: str | None = None) -> list[str]:
        """Distinct prompts, most recently used first."""
        return self.index.prompt_history(limit, user)

    def ensure_thumbnail(self, image_id: str, user: str | None = None) -> Path | None:
        """The thumbnail's path, making it first if it is missing (e.g. after a rebuild or a
        save without one); None if there is no such image (or it cannot be made)."""
        item = self.get(image_id, user)
        if item is None:
            return None
        return self.files.ensure_thumbnail(image_id, item.path)

    def _stored(self, record: Record) -> StoredImage:
        image_id, rel_path, created_at, owner, meta, starred = record
        return StoredImage(
            id=image_id,
            path=self.root / rel_path,
            thumbnail_path=self.files.thumbnail_path(image_id),
            meta=meta,
            user=owner,
            created_at=created_at,
            starred=starred,
        )


def _owned(meta: ImageMetadata, user: str | None) -> ImageMetadata:
    # The owner goes into the PNG too, so that a rebuild restores ownership.
    return meta.with_extra(user=user)
