"""PNG size against encoding time, for the gallery's choice of encoder and zlib level.

    python -m bench.png_levels

One photo-like 1024×1024 picture (the remote-compute stand-in's, decoded from its WebP as the
studio gets it) is encoded by Pillow at several zlib levels and by ``sd35.png_writer`` (its
"Up" filter, then zlib or ISA-L); the CPU time is the best of a few runs (this process only),
the size is the file's.
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable

from PIL import Image

from bench.report import Table, fmt_ms
from sd35 import png_writer
from sd35.png_writer import COMPRESS_LEVEL, encode_png
from sd35.standin import textured_image

PILLOW_LEVELS = (0, 1, 3, 6, 9)


def _best(encode: Callable[[], bytes], runs: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(runs):
        began = time.process_time()
        size = len(encode())
        times.append(time.process_time() - began)
    return min(times), size


def _pillow(image: Image.Image, level: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=level)
    return buffer.getvalue()


def measure(runs: int = 3) -> Table:
    """The table: encoder, CPU time, size, both relative to Pillow's default (level 6)."""
    webp = io.BytesIO()
    textured_image(1024, 1024, 0).save(webp, "WEBP")
    with Image.open(io.BytesIO(webp.getvalue())) as decoded:
        image = decoded.convert("RGB")
    rows = [
        (
            f"Pillow, zlib level {level}" + (" (its default)" if level == 6 else ""),
            *_best(lambda level=level: _pillow(image, level), 1 if level == 9 else runs),
        )
        for level in PILLOW_LEVELS
    ]
    engines = [("zlib", zlib, (1,))]
    if png_writer.DEFLATE == "ISA-L":
        from isal import isal_zlib

        engines.append(("ISA-L", isal_zlib, (1, 2)))
    for name, engine, levels in engines:
        for level in levels:
            used = name == png_writer.DEFLATE and level == COMPRESS_LEVEL
            rows.append(
                (
                    f"sd35.png_writer: Up filter, {name} level {level}" + (" (used)" * used),
                    *_best(lambda e=engine, v=level: encode_png(image, level=v, deflate=e), runs),
                )
            )
    default_time, default_size = next((t, s) for name, t, s in rows if "default" in name)
    table = Table(["PNG encoder, 1024×1024 photo-like", "CPU", "× level 6", "size", "× level 6"])
    for name, seconds, size in rows:
        table.add(
            name,
            fmt_ms(seconds),
            f"{seconds / default_time:.2f}×",
            f"{size / 1e6:.2f} MB",
            f"{size / default_size:.2f}×",
        )
    return table


if __name__ == "__main__":
    print(measure().markdown())
