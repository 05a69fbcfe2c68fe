"""A finished image is never lost: when saving it fails, keep it and save it later.

The Space's image costs GPU quota, so a full disk, a read-only or vanished output folder must
not throw it away. ``SafeKeeper.save`` stores a result in the gallery; when that fails it keeps
the image in memory and as a PNG (with its metadata) in a fallback folder that the log names,
raises ``ImageNotSavedError`` with one specific message, and saves the kept images to the
gallery at the next ``retry`` (before every later save, and from the studio's background loop).
"""

from __future__ import annotations

import errno
import logging
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from sd35.errors import SD35Error
from sd35.gallery import Reservation, SQLiteGalleryStore, StoredImage
from sd35.image_files import write_encoded
from sd35.metadata import ImageMetadata
from sd35.space_client import Result

log = logging.getLogger("sd35.safekeeping")

#: Where kept images go when the output folder cannot take them (named in the log).
DEFAULT_FALLBACK = Path(tempfile.gettempdir()) / "sd35-safekeeping"

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the folder is read-only",
    errno.EACCES: "the folder is not writable (permission denied)",
    errno.EPERM: "the folder is not writable (permission denied)",
    errno.ENOENT: "the folder is gone",
    errno.ENOTDIR: "the folder is not a folder",
}


def reason(error: OSError) -> str:
    """Why a save failed, in a few words a person understands."""
    return _REASONS.get(error.errno or 0) or (error.strerror or str(error)).lower()


class ImageNotSavedError(SD35Error):
    """The image was generated but could not be written to the output folder; it is kept."""

    title = "Image not saved"

    def __init__(self, message: str, *, kept_at: Path | None = None) -> None:
        super().__init__(message)
        self.kept_at = kept_at


@dataclass
class KeptImage:
    """An image waiting to be saved: its bytes, metadata and owner, and its fallback copy."""

    data: bytes
    meta: ImageMetadata
    user: str | None
    fallback: Path | None


class SafeKeeper:
    """Saves results into ``store``; keeps the ones it cannot save and saves them later."""

    def __init__(self, store: SQLiteGalleryStore, fallback_dir: Path | None = None) -> None:
        self.store = store
        self.fallback_dir = Path(fallback_dir or DEFAULT_FALLBACK)
        self._pending: list[KeptImage] = []
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """How many kept images still wait to be saved."""
        with self._lock:
            return len(self._pending)

    def save(
        self,
        result: Result,
        meta: ImageMetadata,
        *,
        user: str | None = None,
        reservation: Reservation | None = None,
    ) -> StoredImage:
        """Store ``result`` with ``meta`` (under ``reservation``'s name when given); on failure
        keep it and raise ``ImageNotSavedError``."""
        self.retry()
        data = Path(result.path).read_bytes()  # the download is in the temp folder: readable
        try:
            return self._store(data, meta, user, reservation)
        except OSError as error:
            kept = self._keep(data, meta, user)
            where = self.store.root
            message = f"The image is safe but could not be saved to {where}: {reason(error)}."
            log.error(
                "%s It is kept in memory%s and will be saved there as soon as it can be.",
                message,
                f" and in {kept.fallback}" if kept.fallback else "",
            )
            raise ImageNotSavedError(message, kept_at=kept.fallback) from None

    def retry(self) -> int:
        """Save the kept images that the output folder takes now; returns how many."""
        with self._lock:
            waiting, self._pending = self._pending, []
        saved = 0
        for index, kept in enumerate(waiting):
            try:
                stored = self._store(kept.data, kept.meta, kept.user)
            except OSError:
                with self._lock:  # still failing: keep the rest, in order, for the next try
                    self._pending[:0] = waiting[index:]
                break
            saved += 1
            log.info("A kept image is now saved as %s.", stored.path)
            if kept.fallback is not None:
                kept.fallback.unlink(missing_ok=True)
        return saved

    def _store(
        self,
        data: bytes,
        meta: ImageMetadata,
        user: str | None,
        reservation: Reservation | None = None,
    ) -> StoredImage:
        # No thumbnail now: the gallery makes it when a listing first shows the image. A PNG
        # (Inference Providers) is stored as it came, with our chunks spliced in.
        return self.store.save_encoded(data, meta, user=user, reservation=reservation)

    def _keep(self, data: bytes, meta: ImageMetadata, user: str | None) -> KeptImage:
        fallback: Path | None = None
        try:
            self.fallback_dir.mkdir(parents=True, exist_ok=True)
            path = self.fallback_dir / f"kept-{uuid.uuid4().hex}.png"
            fallback = write_encoded(data, path, meta.with_extra(user=user))
        except OSError as error:  # the fallback disk is full too: memory still holds it
            log.error("Could not keep a copy in %s either: %s", self.fallback_dir, error)
            fallback = None
        kept = KeptImage(data, meta, user, fallback)
        with self._lock:
            self._pending.append(kept)
        return kept
