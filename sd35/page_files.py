"""Handing gallery files to the page without opening the output folder to every user.

Gradio serves a file to the browser only from its own cache (or from ``allowed_paths``, which
serves a whole folder to anyone logged in: every user's PNGs, thumbnails and the SQLite index).
So the output folder is never an allowed path. Callbacks that already checked the owner hand
the page a path inside Gradio's cache, under a random name nobody can guess.

We put the file there ourselves (a hard link, else a copy) because a path already in the cache
is one Gradio takes as it is; any other path it hashes in full (SHA-256) and copies into the
cache on every update that shows it, a cost the studio paid per preview, per result and per
thumbnail (bench/FINDINGS.md). A file shown again reuses its staged link.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

#: Staged files kept at most; the oldest are removed first. A page still showing one of them
#: has fetched it long before (and a browser keeps it), so the bound only caps disk use.
MAX_STAGED = 1024


def gradio_cache_dir() -> Path:
    """The folder Gradio serves its cached files from (``GRADIO_TEMP_DIR``, else its temp
    folder), as ``gradio.utils.get_upload_folder`` names it."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


class PageFiles:
    """Paths of stored images, previews and thumbnails that the page may show."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache_dir = cache_dir
        self._root: Path | None = None
        #: (source path, mtime, size) -> the staged file; a changed file is staged anew.
        self._staged: OrderedDict[tuple[str, int, int], Path] = OrderedDict()
        self._lock = threading.Lock()

    def for_page(self, path: Path | str) -> str:
        """A path to ``path``'s file inside Gradio's cache, which Gradio hands to the browser
        without hashing or copying it."""
        path = Path(path).resolve()
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            staged = self._staged.get(key)
            if staged is not None and staged.exists():
                self._staged.move_to_end(key)
                return str(staged)
            staged = self._stage(path)
            self._staged[key] = staged
            while len(self._staged) > MAX_STAGED:
                _, old = self._staged.popitem(last=False)
                shutil.rmtree(old.parent, ignore_errors=True)
            return str(staged)

    def _stage(self, path: Path) -> Path:
        if self._root is None:
            cache = self._cache_dir or gradio_cache_dir()
            cache.mkdir(parents=True, exist_ok=True)
            self._root = Path(tempfile.mkdtemp(prefix="sd35-page-", dir=cache))
        # The link's only secret: 256 random bits, a folder for this content only (the same
        # shape as Gradio's own SHA-256 folders, so cache_headers treats both alike).
        folder = self._root / secrets.token_hex(32)
        folder.mkdir()
        target = folder / path.name
        try:
            os.link(path, target)
        except OSError:  # another file system: copy
            shutil.copyfile(path, target)
        return target

    def close(self) -> None:
        """Remove every staged file."""
        with self._lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
            self._staged.clear()
