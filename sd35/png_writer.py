"""Writing the gallery's PNGs quickly: the one encode every generated image goes through.

Pillow's PNG encoder tries every row filter on every row ("adaptive" filtering); on a
1024×1024 picture that costs more than the compression itself (BENCHMARKS.md, "remote
compute"). Here 8-bit RGB and RGBA images are written with the "Up" filter on every row
(one vectorised subtraction) and deflated by ISA-L (the ``isal`` package: Intel's
vectorised deflate, a zlib stream every PNG reader takes) at its level 1, which gives files
of the size of zlib's level 1 in about a quarter of its CPU time; without ``isal`` (a
platform it has no wheel for) zlib's level 1 does it. Both release the GIL while they work,
so the server's event loop runs on meanwhile. Other modes go through Pillow
(:func:`encode_png_pillow`). The chunks are the same as Pillow would write: IHDR, iCCP
(when the image has a profile), the metadata's text chunks, IDAT, IEND.

A backend that hands back a PNG (Inference Providers) needs no encode at all:
:func:`png_with_metadata` splices our text chunks into its bytes behind IHDR (dropping the
provider's own chunks of the same keywords), so the pixels are never decoded.

Everything here returns bytes; writing files (atomically) is :mod:`sd35.image_files`' part.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from sd35.metadata import FOOOCUS_SCHEME_KEY, JSON_KEY, PARAMETERS_KEY, ImageMetadata, png_info

try:  # ISA-L: the same zlib stream in a quarter of the time (measured: bench/png_levels.py)
    from isal import isal_zlib as _deflate

    DEFLATE = "ISA-L"
except ImportError:  # pragma: no cover - isal has wheels for the platforms we run on
    _deflate = zlib  # type: ignore[assignment]
    DEFLATE = "zlib"

#: The deflate level of the IDAT data (1 of ISA-L's 0-3, or of zlib's 0-9): the knee of the
#: size/time curve, measured in BENCHMARKS.md ("remote compute").
COMPRESS_LEVEL = 1


_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types of the modes written here (8 bits per sample).
_COLOUR_TYPES = {"RGB": 2, "RGBA": 6}
_UP = 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(
    image: Image.Image,
    info: PngImagePlugin.PngInfo | None = None,
    *,
    level: int = COMPRESS_LEVEL,
    deflate: Any = _deflate,
) -> bytes:
    """The PNG file of an 8-bit RGB or RGBA ``image`` (with ``info``'s chunks), as bytes;
    ``deflate`` is the module that compresses (ISA-L's ``isal_zlib`` or ``zlib``)."""
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
            _chunk(b"IDAT", deflate.compress(filtered.data, level)),
            *after,
            _chunk(b"IEND", b""),
        ]
    )


def encode_png_pillow(
    image: Image.Image,
    info: PngImagePlugin.PngInfo | None = None,
    *,
    compress_level: int | None = None,
) -> bytes:
    """The PNG file of ``image`` in any mode, through Pillow (modes PNG cannot hold become RGB
    or RGBA; an ICC profile is kept). ``compress_level`` is zlib's 0-9 (None: Pillow's 6)."""
    if image.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    params: dict[str, Any] = {}
    if info is not None:
        params["pnginfo"] = info
    if compress_level is not None:
        params["compress_level"] = compress_level
    if image.info.get("icc_profile"):
        params["icc_profile"] = image.info["icc_profile"]
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def png_bytes(image: Image.Image, meta: ImageMetadata) -> bytes:
    """The gallery's PNG of ``image`` with ``meta``'s chunks: quickly for RGB and RGBA, through
    Pillow (at zlib's level 1) for other modes."""
    if image.mode in _COLOUR_TYPES:
        return encode_png(image, png_info(meta))
    return encode_png_pillow(image, png_info(meta), compress_level=1)


# --- a PNG that came encoded: our chunks spliced in, the pixels untouched -------------------------

#: The keywords of the chunks we write (docs/metadata.md); a provider's own are dropped.
_OUR_KEYWORDS = frozenset(
    k.encode("latin-1") for k in (PARAMETERS_KEY, FOOOCUS_SCHEME_KEY, JSON_KEY)
)
_TEXT_KINDS = (b"tEXt", b"zTXt", b"iTXt")


def png_chunks(data: bytes) -> list[tuple[bytes, memoryview]] | None:
    """The chunks of a whole, sound PNG as ``(type, chunk bytes with length and CRC)``, or None
    when ``data`` is not one (no signature, IHDR not first, a chunk cut off or with a wrong
    CRC, no IEND). Reads no pixel data beyond the CRCs."""
    view = memoryview(data)
    if view[:8] != _SIGNATURE:
        return None
    chunks: list[tuple[bytes, memoryview]] = []
    pos = 8
    while pos + 12 <= len(view):
        length, kind = struct.unpack_from(">I4s", view, pos)
        end = pos + 12 + length
        if end > len(view):
            return None
        (crc,) = struct.unpack_from(">I", view, end - 4)
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            return None
        chunks.append((kind, view[pos:end]))
        pos = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        return None
    return chunks


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR (no decoding); None if ``data`` is not a PNG."""
    if len(data) < 24 or data[:8] != _SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def png_with_metadata(data: bytes, meta: ImageMetadata) -> bytes | None:
    """``data`` (a PNG) with ``meta``'s text chunks right after IHDR, and any ``parameters``,
    ``fooocus_scheme`` or ``sd35`` text chunk it carried dropped: the same chunks
    :func:`png_bytes` writes, every other byte as it was (pixels identical, nothing decoded).
    None when ``data`` is not a whole, sound PNG (decode and encode it instead)."""
    chunks = png_chunks(data)
    size = png_size(data)
    if chunks is None or size is None or 0 in size:
        return None
    ours = [_chunk(kind, body) for kind, body, *_ in png_info(meta).chunks]
    kept = [bytes(chunk) for kind, chunk in chunks[1:] if not _is_ours(kind, chunk)]
    return b"".join([_SIGNATURE, bytes(chunks[0][1]), *ours, *kept])


def _is_ours(kind: bytes, chunk: memoryview) -> bool:
    if kind not in _TEXT_KINDS:
        return False
    keyword = bytes(chunk[8 : 8 + 80]).partition(b"\0")[0]
    return keyword in _OUR_KEYWORDS
