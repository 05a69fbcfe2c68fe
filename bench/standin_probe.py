"""The stand-in Space as a process of its own, reporting the moment it emits each image.

    python -m bench.standin_probe --emit-log FILE [stand-in options...]

It runs ``sd35.standin.main`` unchanged, except that ``sd35.standin.save_webp`` (which every
frame and final image goes through just before the stand-in ``yield``s or returns it) is
wrapped: after the WebP is written, one line ``<time.time()> <key>`` is appended to FILE. The
key is Gradio's own content hash of the file (``gradio.processing_utils.hash_file``), which is
also the name of the cache folder every Gradio server puts the file in, and which any process
on this machine computes alike (the hash seed lives in a file of the gradio package). So a
frame can be recognised wherever it turns up: in a client's download, or in the URL of the
page's ``<img>``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def install_probe(log_path: Path) -> None:
    """Wrap ``sd35.standin.save_webp`` so that each image it writes is logged with its time."""
    from gradio.processing_utils import hash_file

    import sd35.standin as standin

    original: Callable[[Any, Any], str] = standin.save_webp
    lock = threading.Lock()
    log = log_path.open("a", encoding="utf-8", buffering=1)

    def save_and_log(image: Any, directory: Any) -> str:
        path = original(image, directory)
        emitted = time.time()  # the image exists; the stand-in yields/returns it next
        key = hash_file(path)
        with lock:
            log.write(f"{emitted:.6f} {key}\n")
        return path

    standin.save_webp = save_and_log


def read_emissions(log_path: Path, offset: int = 0) -> tuple[list[tuple[float, str]], int]:
    """The (time, key) lines from byte ``offset`` on, and the offset after the last full line."""
    try:
        data = log_path.read_bytes()[offset:]
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    emissions = []
    for line in data[:end].decode().splitlines():
        stamp, key = line.split()
        emissions.append((float(stamp), key))
    return emissions, offset + end


def main(argv: list[str]) -> int:
    """``--emit-log FILE`` then the stand-in's own options."""
    if len(argv) < 2 or argv[0] != "--emit-log":
        print("usage: python -m bench.standin_probe --emit-log FILE [options]", file=sys.stderr)
        return 2
    install_probe(Path(argv[1]))
    from sd35.standin import main as standin_main

    return standin_main(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
