"""The gallery's image files: day folders, atomic writes, the PNGs themselves, thumbnails.

The first of the gallery's three parts (docs/architecture.md, "storage"); it knows nothing of
the SQLite index. Layout under ``root``::

    2026-11-26/20261126-071502-123456-ab12cd.png   the images (the truth: metadata inside)
    .thumbnails/20261126-071502-123456-ab12cd.webp at most 256 px a side

Every file is written all-or-nothing (:func:`atomic_file`): a temporary file in the same
folder whose name says which process writes it, renamed at the end. Scans skip temporary files
and delete those whose writer is gone (or that are older than :data:`STALE_TEMP_SECONDS`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import secrets
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from sd35.metadata import ImageMetadata, png_info
from sd35.png_writer import encode_png_pillow, png_bytes, png_with_metadata

log = logging.getLogger("sd35.gallery")

THUMBNAIL_SIZE = 256
#: A temporary file is left alone while its writer lives, but not longer than this.
STALE_TEMP_SECONDS = 3600
#: Temporary files of an atomic write start with this; ``.tmp-<pid>-<random><suffix>``.
TEMP_PREFIX = ".tmp-"

_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: The last 12 bytes of every complete PNG: the IEND chunk (length 0, type, CRC).
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


# --- atomic writes ------------------------------------------------------------------------------


def temp_path(directory: Path, suffix: str) -> Path:
    """A fresh temporary name in ``directory`` that names the writing process (for cleanup)."""
    return directory / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{suffix}"


def temp_owner(name: str) -> int | None:
    """The process id encoded in a temporary file name, or None if it names none."""
    if not name.startswith(TEMP_PREFIX):
        return None
    pid, _, _ = name[len(TEMP_PREFIX) :].partition("-")
    return int(pid) if pid.isdigit() else None


@contextlib.contextmanager
def atomic_file(path: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Write ``path`` all-or-nothing: a temporary file in the same directory, renamed at the end.

    With ``durable`` the data and the rename are fsynced, so after a crash or power loss the
    file is either absent (or the old version) or complete.
    """
    path = Path(path)
    tmp = temp_path(path.parent, path.suffix)
    try:
        with open(tmp, "xb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), hence optional.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """``data`` at ``path``, atomically (see :func:`atomic_file`)."""
    with atomic_file(Path(path), durable=durable) as handle:
        handle.write(data)
    return Path(path)


def write_png(
    image: Image.Image,
    path: Path,
    meta: ImageMetadata,
    *,
    durable: bool = True,
    compress_level: int | None = None,
) -> Path:
    """Save ``image`` as a PNG with ``meta`` at ``path`` through Pillow, atomically.
    ``compress_level`` is zlib's 0-9 (None: Pillow's default, 6). The gallery itself writes
    through :meth:`ImageFiles.write_image` (faster for RGB/RGBA)."""
    data = encode_png_pillow(image, png_info(meta), compress_level=compress_level)
    return write_bytes(Path(path), data, durable=durable)


def write_image(image: Image.Image, path: Path, meta: ImageMetadata) -> Path:
    """Encode ``image`` with ``meta`` as the PNG at ``path`` (atomic, fsynced), quickly for
    RGB and RGBA (:func:`sd35.png_writer.png_bytes`)."""
    return write_bytes(path, png_bytes(image, meta))


def write_encoded(data: bytes, path: Path, meta: ImageMetadata) -> Path:
    """Store an image that came encoded (a backend's PNG, JPEG or WebP) with ``meta`` as the
    PNG at ``path`` (atomic, fsynced).

    A PNG keeps its bytes: our text chunks are spliced in and its pixels are never decoded
    (:func:`sd35.png_writer.png_with_metadata`). Anything else (or a PNG that is not whole) is
    decoded once and written as :func:`write_image` does."""
    spliced = png_with_metadata(data, meta)
    if spliced is not None:
        return write_bytes(path, spliced)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return write_image(image, path, meta)


def png_is_whole(path: Path) -> bool:
    """True when the file ends with a PNG's closing chunk (a cut-off write does not)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-len(_PNG_END), os.SEEK_END)
            return handle.read() == _PNG_END
    except OSError:
        return False


# --- ids and reservations -----------------------------------------------------------------------


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


# --- the folder ---------------------------------------------------------------------------------


class ImageFiles:
    """The PNGs and thumbnails under ``root`` (no index, no locking: files are written under
    fresh names and renamed into place)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.thumbnails_dir = self.root / ".thumbnails"
        self.thumbnails_dir.mkdir(parents=True, exist_ok=True)

    def reserve(self) -> Reservation:
        """A fresh id and the path its PNG will have (nothing is written yet)."""
        image_id, stamp = new_image_id()
        return Reservation(image_id, stamp, self.root / f"{stamp:%Y-%m-%d}" / f"{image_id}.png")

    def rel_path(self, path: Path) -> str:
        """``day/name.png``, as the index stores it."""
        return f"{path.parent.name}/{path.name}"

    def write_image(self, image: Image.Image, path: Path, meta: ImageMetadata) -> Path:
        """Encode ``image`` with ``meta`` as the PNG at ``path`` (atomic, fsynced)."""
        path.parent.mkdir(exist_ok=True)
        return write_image(image, path, meta)

    def write_encoded(self, data: bytes, path: Path, meta: ImageMetadata) -> Path:
        """Store an image that came encoded with ``meta`` (see :func:`write_encoded`)."""
        path.parent.mkdir(exist_ok=True)
        return write_encoded(data, path, meta)

    # --- thumbnails ---

    def thumbnail_path(self, image_id: str) -> Path:
        return self.thumbnails_dir / f"{image_id}.webp"

    def write_thumbnail(self, image: Image.Image, image_id: str) -> Path:
        """At most 256 px a side, WebP, not fsynced (a lost thumbnail is made again)."""
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        thumb = image.convert("RGBA" if has_alpha else "RGB")
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
        path = self.thumbnail_path(image_id)
        with atomic_file(path, durable=False) as handle:
            thumb.save(handle, format="WEBP", quality=80, method=4)
        return path

    def ensure_thumbnail(self, image_id: str, png: Path) -> Path | None:
        """The thumbnail of the PNG ``png``, made from it first if missing; None on failure."""
        path = self.thumbnail_path(image_id)
        if path.exists():
            return path
        try:
            with Image.open(png) as image:
                return self.write_thumbnail(image, image_id)
        except (OSError, ValueError) as error:
            log.warning("thumbnail for %s failed: %s", image_id, error)
            return None

    def try_thumbnail(self, image: Image.Image, image_id: str) -> None:
        """Make the thumbnail now; a failure is only logged (it can be made again later)."""
        try:
            self.write_thumbnail(image, image_id)
        except (OSError, ValueError) as error:
            log.warning("thumbnail for %s failed: %s", image_id, error)

    # --- removal and export ---

    def delete(self, image_id: str, png: Path) -> None:
        png.unlink(missing_ok=True)
        self.thumbnail_path(image_id).unlink(missing_ok=True)

    def write_zip(self, pngs: Iterable[Path], dest: Path) -> Path:
        """Zip the PNGs byte for byte (stored, not recompressed: PNG is compressed)."""
        with (
            atomic_file(dest, durable=False) as handle,
            zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive,
        ):
            for png in pngs:
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    archive.write(png, arcname=png.name)
        return dest

    # --- scanning ---

    def scan(self) -> tuple[dict[str, str], int]:
        """Every PNG in a day folder (id → relative path), deleting stale temporary files;
        returns them and how many temporary files were removed. One ``scandir`` per day."""
        found: dict[str, str] = {}
        removed = 0
        with os.scandir(self.root) as entries:
            days = []
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    removed += remove_if_stale(entry)
                elif _DAY_DIR.match(entry.name) and entry.is_dir():
                    if entry.is_symlink() and not self.inside(entry.path):
                        log.warning("ignoring %s: a link to outside the gallery", entry.name)
                        continue
                    days.append(entry.name)
        for day in days:
            with os.scandir(self.root / day) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith(TEMP_PREFIX):
                        removed += remove_if_stale(entry)
                    elif name.lower().endswith(".png") and entry.is_file():
                        if entry.is_symlink() and not self.inside(entry.path):
                            log.warning("ignoring %s/%s: a link to outside the gallery", day, name)
                            continue
                        image_id = name[:-4]
                        if image_id in found:
                            log.warning("duplicate image id %s ignored: %s/%s", image_id, day, name)
                            continue
                        found[image_id] = f"{day}/{name}"
        return found, removed

    def clean_thumbnails(self, ids: set[str]) -> tuple[int, int]:
        """Delete thumbnails of images not in ``ids`` and stale temporary files; the counts."""
        orphans = temps = 0
        with os.scandir(self.thumbnails_dir) as entries:
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    temps += remove_if_stale(entry)
                elif entry.name.endswith(".webp") and entry.name[:-5] not in ids:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        orphans += 1
        return orphans, temps

    def inside(self, path: str | Path) -> bool:
        """True when ``path`` (links resolved) is inside the gallery's folder."""
        real = Path(os.path.realpath(path))
        root = Path(os.path.realpath(self.root))
        return real == root or root in real.parents


def created_from_mtime(path: Path) -> str:
    """The file's modification time, ISO 8601 with offset (now, if it cannot be read)."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = time.time()
    return datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds")


def remove_if_stale(entry: os.DirEntry[str]) -> int:
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


__all__ = [
    "STALE_TEMP_SECONDS",
    "TEMP_PREFIX",
    "THUMBNAIL_SIZE",
    "ImageFiles",
    "Reservation",
    "atomic_file",
    "created_from_mtime",
    "new_image_id",
    "png_is_whole",
    "remove_if_stale",
    "temp_owner",
    "temp_path",
    "write_bytes",
    "write_encoded",
    "write_image",
    "write_png",
]
