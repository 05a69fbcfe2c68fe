"""Writing the gallery's PNGs quickly: the one encode every generated image goes through.

Pillow's PNG encoder tries every row filter on every row ("adaptive" filtering); on a
1024×1024 picture that costs more than the compression itself (BENCHMARKS.md, "remote
compute"). Here 8-bit RGB and RGBA images are written with the "Up" filter on every row
(one vectorised subtraction) and zlib at level 1, which for generated pictures gives files
of about the size of Pillow's level 1 in well under half its CPU time; zlib also releases the
GIL while it works, so the server's event loop runs on meanwhile. Other modes go through
Pillow (:func:`sd35.metadata.write_png`). The chunks are the same as Pillow would write:
IHDR, iCCP (when the image has a profile), the metadata's text chunks, IDAT, IEND.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from sd35.metadata import ImageMetadata, atomic_file, png_info
from sd35.metadata import write_png as write_png_pillow

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types of the modes written here (8 bits per sample).
_COLOUR_TYPES = {"RGB": 2, "RGBA": 6}
#: zlib level: measured in BENCHMARKS.md (size vs CPU time); 1 is the knee of the curve.
COMPRESS_LEVEL = 1
_UP = 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(
    image: Image.Image,
    info: PngImagePlugin.PngInfo | None = None,
    *,
    level: int = COMPRESS_LEVEL,
) -> bytes:
    """The PNG file of an 8-bit RGB or RGBA ``image`` (with ``info``'s chunks), as bytes."""
    colour = _COLOUR_TYPES.get(image.mode)
    if colour is None:
        raise ValueError(f"encode_png writes RGB and RGBA only, not {image.mode}")
    width, height = image.size
    rows = np.asarray(image, dtype=np.uint8).reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = _UP  # on the first row "Up" sees a row of zeros: the bytes as they are
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG wants
    before: list[bytes] = []
    after: list[bytes] = []
    profile = image.info.get("icc_profile")
    if profile:
        before.append(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(profile)))
    for entry in info.chunks if info is not None else []:
        kind, data, *rest = entry
        (after if rest and rest[0] else before).append(_chunk(kind, data))
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"".join(
        [
            _SIGNATURE,
            _chunk(b"IHDR", header),
            *before,
            _chunk(b"IDAT", zlib.compress(filtered.data, level)),
            *after,
            _chunk(b"IEND", b""),
        ]
    )


def write_png(image: Image.Image, path: Path, meta: ImageMetadata) -> Path:
    """Save ``image`` with ``meta`` at ``path``, atomically and fsynced, as
    :func:`sd35.metadata.write_png` does, but quickly for RGB and RGBA images."""
    if image.mode not in _COLOUR_TYPES:
        return write_png_pillow(image, path, meta, compress_level=COMPRESS_LEVEL)
    data = encode_png(image, png_info(meta))
    with atomic_file(Path(path)) as handle:
        handle.write(data)
    return Path(path)
