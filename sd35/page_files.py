"""Handing gallery files to the page without opening the output folder to every user.

Gradio serves a file to the browser only from its own cache (or from ``allowed_paths``, which
serves a whole folder to anyone logged in: every user's PNGs, thumbnails and the SQLite index).
So the output folder is never an allowed path. Callbacks that already checked the owner hand
Gradio a path it copies into its cache under a name derived from the file's contents (a link
nobody can guess without the image). Gradio only copies files from the working and temp
folders; a file of an output folder elsewhere is first staged (hard link, else copy) into a
private temp folder of ours, removed on ``close``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

#: Staged files kept at most; the oldest are removed first (Gradio has its own copy by then).
MAX_STAGED = 256


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class PageFiles:
    """Paths of stored images and thumbnails that Gradio may copy into its cache."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._staged: OrderedDict[Path, Path] = OrderedDict()
        self._lock = threading.Lock()

    def for_page(self, path: Path | str) -> str:
        """A path to ``path``'s file that Gradio accepts (the file itself when it may)."""
        path = Path(path).resolve()
        readable = (Path.cwd().resolve(), Path(tempfile.gettempdir()).resolve())
        if any(_inside(path, folder) for folder in readable):
            return str(path)
        return str(self._stage(path))

    def _stage(self, path: Path) -> Path:
        stat = path.stat()
        key = hashlib.sha256(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}".encode()).hexdigest()
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="sd35-page-"))
            folder = self._root / key[:32]
            target = folder / path.name
            if target.exists():
                self._staged.move_to_end(target, last=True)
                return target
            folder.mkdir(exist_ok=True)
            try:
                os.link(path, target)
            except OSError:  # another file system: copy
                shutil.copyfile(path, target)
            self._staged[target] = folder
            while len(self._staged) > MAX_STAGED:
                _, old = self._staged.popitem(last=False)
                shutil.rmtree(old, ignore_errors=True)
            return target

    def close(self) -> None:
        """Remove every staged file."""
        with self._lock:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
            self._staged.clear()
