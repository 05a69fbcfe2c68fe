"""Generation metadata inside PNG files, in the forms every popular reader understands.

Three text chunks are written before the image data (docs/metadata.md says why each looks the
way it does, reader by reader):

``parameters``
    AUTOMATIC1111 "infotext": prompt line(s), an always-present ``Negative prompt: `` line (with
    its trailing space, even when empty: SwarmUI looks for ``"\\nNegative prompt: "``, ComfyUI's
    importer needs the line), and one last line of ``Key: value`` pairs::

        Steps: N, Raw prompt: "…", Raw negative prompt: "…", CFG scale: …, Seed: …, Size: WxH,
        Model: …, Space: …

    ``Steps`` opens the line (ComfyUI's importer looks for ``\\nSteps:``). ``Raw prompt`` and
    ``Raw negative prompt`` are Fooocus's own keys, the only way its A1111 importer recovers a
    prompt; they are JSON strings in which ``"``, ``:`` and U+2028/U+2029 are ``\\u`` escapes,
    so that ComfyUI's and SwarmUI's simpler splitters step over them in one piece. They come
    right after ``Steps`` so that whatever those splitters still make of them is overridden by
    the real ``CFG scale``/``Seed``/``Size`` behind them. No ``Sampler``: the Space's scheduler
    cannot be named truthfully from here (docs/metadata.md).
``fooocus_scheme``
    ``a1111``, so Fooocus parses ``parameters`` with its A1111 parser for certain.
``sd35``
    Our own JSON: an exact copy of :class:`ImageMetadata`. It is always ASCII (JSON ``\\u``
    escapes) so that no reader's idea of text encoding can damage it.

Text goes in ``tEXt`` when it is pure ASCII and in an uncompressed ``iTXt`` (UTF-8) otherwise.
Pillow's ``PngInfo.add_text`` only switches to iTXt for text that is not Latin-1; a prompt with
"é" would land in tEXt as Latin-1, which ComfyUI's frontend decodes as UTF-8 (mojibake). Current
ComfyUI frontends read compressed iTXt too; uncompressed is kept for the releases in between that
parse the iTXt header but do not inflate (the oldest ones skip no iTXt header at all and cannot
be helped).

What cannot round-trip through AUTOMATIC1111's own parser (our JSON chunk keeps it exactly):

* leading/trailing whitespace of each line and leading blank lines of the prompt and of the
  negative prompt (A1111 strips every line and the whole text);
* a prompt or negative-prompt line that starts with ``Negative prompt:``: A1111 would switch to
  the negative prompt there. We write such a line behind an invisible ZERO WIDTH SPACE, so
  A1111 reads the right split but keeps that U+200B in the text; :func:`parse_a1111` removes it
  again (the escape is injective: a line already starting with U+200B gets one more);
* NUL characters (not allowed in PNG text) are dropped and lone surrogates become U+FFFD;
* ``extra`` and ``created_at``/``elapsed`` are only in our JSON chunk.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import struct
import zlib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from sd35.errors import SD35Error
from sd35.params import DEFAULT_SPACE, GenerationRequest
from sd35.params import MODEL_ID as DEFAULT_MODEL

#: PNG text chunk keys we write.
PARAMETERS_KEY = "parameters"
FOOOCUS_SCHEME_KEY = "fooocus_scheme"
JSON_KEY = "sd35"
JSON_FORMAT_VERSION = 1

_NEGATIVE = "Negative prompt:"
_ZWSP = "\u200b"
#: A stripped line A1111 would read as the start of the negative prompt, or one that our escape
#: (a leading U+200B) would otherwise make ambiguous.
_NEEDS_ESCAPE = re.compile(r"[\u200b\s]*Negative prompt:")
#: One ``Key: value`` pair of A1111's parameter line, equivalent to A1111's ``re_param``: a value
#: is either a JSON string or runs up to the next comma.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Text chunks larger than this are ignored when reading (a hostile file must not exhaust memory).
_MAX_TEXT_BYTES = 8 * 1024 * 1024


class NotAnImageError(SD35Error, ValueError):
    """The data given to :func:`read_metadata` is not an image Pillow can identify."""

    title = "Not an image"


def now_iso() -> str:
    """The current local time, ISO 8601 with its UTC offset."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class ImageMetadata(GenerationRequest):
    """Everything needed to describe, and reproduce, one generated image: the request's eight
    inputs (declared once, in ``GenerationRequest``) and where and when it was made.

    ``seed`` is the seed actually used; ``randomize_seed`` records whether the request asked
    for a random one. ``extra`` holds JSON-compatible extras (e.g. the owning ``user``).
    """

    randomize_seed: bool = False  # a stored image records the request's choice; no default
    model: str = DEFAULT_MODEL
    space: str = DEFAULT_SPACE
    created_at: str = field(default_factory=now_iso)
    elapsed: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The backend that made the image, as configured, without secrets (issue 16).
    backend: str = ""

    @classmethod
    def from_request(
        cls,
        request: GenerationRequest,
        seed: int | None = None,
        *,
        model: str = DEFAULT_MODEL,
        space: str = DEFAULT_SPACE,
        created_at: str | None = None,
        elapsed: float | None = None,
        extra: dict[str, Any] | None = None,
        backend: str = "",
    ) -> ImageMetadata:
        """Metadata for an image made from ``request``; ``seed`` is the one the Space used."""
        inputs = _request_inputs(request)
        if seed is not None:
            inputs["seed"] = int(seed)
        return cls(
            **inputs,
            model=model,
            space=space,
            created_at=created_at or now_iso(),
            elapsed=elapsed,
            extra=dict(extra or {}),
            backend=backend,
        )

    def to_request(self) -> GenerationRequest:
        """The request that reproduces this image: same settings, this seed, not randomized."""
        return GenerationRequest(**{**_request_inputs(self), "randomize_seed": False})

    def with_extra(self, **items: Any) -> ImageMetadata:
        """A copy with ``items`` merged into ``extra`` (a value of None removes the key)."""
        extra = dict(self.extra)
        for key, value in items.items():
            if value is None:
                extra.pop(key, None)
            else:
                extra[key] = value
        return replace(self, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        return {"format": JSON_KEY, "version": JSON_FORMAT_VERSION, **asdict(self)}

    def to_json(self) -> str:
        """Compact ASCII JSON (raises TypeError if ``extra`` is not JSON-compatible)."""
        return json.dumps(self.to_dict(), ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageMetadata:
        """Build from :meth:`to_dict` output; raises ValueError when a field has a wrong type."""
        if not isinstance(data, dict):
            raise ValueError("metadata must be a JSON object")
        elapsed = data.get("elapsed")
        extra = data.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError("extra must be an object")
        return cls(
            prompt=_typed(data, "prompt", str),
            negative_prompt=_typed(data, "negative_prompt", str, ""),
            seed=_typed(data, "seed", int, 0),
            randomize_seed=_typed(data, "randomize_seed", bool, False),
            width=_typed(data, "width", int, 1024),
            height=_typed(data, "height", int, 1024),
            guidance_scale=float(_typed(data, "guidance_scale", (int, float), 4.5)),
            num_inference_steps=_typed(data, "num_inference_steps", int, 40),
            model=_typed(data, "model", str, DEFAULT_MODEL),
            space=_typed(data, "space", str, ""),
            created_at=_typed(data, "created_at", str, ""),
            elapsed=None if elapsed is None else float(_typed(data, "elapsed", (int, float))),
            extra=extra,
            backend=_typed(data, "backend", str, ""),
        )

    @classmethod
    def from_json(cls, text: str) -> ImageMetadata:
        return cls.from_dict(json.loads(text))


def _request_inputs(request: GenerationRequest) -> dict[str, Any]:
    """The eight inputs of ``request``, each as the type its default has (a missing negative
    prompt is "")."""
    inputs: dict[str, Any] = {}
    for item in fields(GenerationRequest):
        value = getattr(request, item.name)
        kind = type(item.default)
        if value is None and item.default is not MISSING:
            value = item.default
        elif kind in (bool, int, float):
            value = kind(value)
        inputs[item.name] = value
    return inputs


def _typed(data: dict[str, Any], key: str, kind: Any, default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise ValueError(f"{key} is missing")
        return default
    value = data[key]
    # bool is an int subclass: a JSON true must not pass as a seed, nor 1 as a flag.
    if isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{key} has the wrong type")
    if not isinstance(value, kind):
        raise ValueError(f"{key} has the wrong type")
    return value


# --- AUTOMATIC1111 infotext ---------------------------------------------------------------------


def to_a1111(meta: ImageMetadata) -> str:
    """AUTOMATIC1111 ``parameters`` text for ``meta`` (see the module docstring for its layout)."""
    prompt = _escape_block(meta.prompt)
    negative = _escape_block(meta.negative_prompt)
    # Order matters (module docstring): Steps first, the raw texts next, the real keys behind.
    pairs: list[tuple[str, object]] = [
        ("Steps", meta.num_inference_steps),
        ("CFG scale", repr(float(meta.guidance_scale))),
        ("Seed", meta.seed),
        ("Size", f"{meta.width}x{meta.height}"),
        ("Model", meta.model),
        ("Space", meta.space),
        ("Backend", meta.backend),
    ]
    # Empty values are left out: A1111's parser chokes on "Key: ," (it indexes v[0]).
    values = [(key, _clean_text(str(value))) for key, value in pairs]
    fields = [f"{key}: {_quote(value)}" for key, value in values if value != ""]
    fields[1:1] = [
        f"{RAW_PROMPT}: {raw_json(_clean_text(meta.prompt))}",
        f"{RAW_NEGATIVE}: {raw_json(_clean_text(meta.negative_prompt))}",
    ]
    return f"{prompt}\n{_NEGATIVE} {negative}\n{', '.join(fields)}"


#: Fooocus's keys for the prompts as typed (its A1111 importer reads the prompt only from here).
RAW_PROMPT = "Raw prompt"
RAW_NEGATIVE = "Raw negative prompt"
#: Inside a raw JSON string: a JSON escape pair, or a character some reader splits on.
_RAW_TOKEN = re.compile(r"\\.|[:\u2028\u2029]", re.S)


def raw_json(text: str) -> str:
    """``text`` as a JSON string without a bare ``"`` or ``:`` inside, nor a JavaScript line
    terminator: ComfyUI ends a quoted value at the first ``"`` followed by a comma, SwarmUI
    splits the line at every ``:``, and JavaScript's ``.`` stops at U+2028/U+2029."""

    def escape(match: re.Match[str]) -> str:
        token = match[0]
        if token == '\\"':
            return "\\u0022"
        if len(token) == 1:
            return f"\\u{ord(token):04x}"
        return token

    return '"' + _RAW_TOKEN.sub(escape, json.dumps(text, ensure_ascii=False)[1:-1]) + '"'


def parse_a1111(text: str) -> dict[str, Any]:
    """Parse AUTOMATIC1111 parameters text with A1111's own algorithm.

    Returns ``prompt``, ``negative_prompt`` and, when the last line holds at least three
    ``Key: value`` pairs, those pairs: ``Steps`` → ``num_inference_steps``, ``CFG scale`` →
    ``guidance_scale``, ``Seed`` → ``seed``, ``Size`` → ``width``/``height``; every other pair is
    kept under its own name as text (JSON-quoted values unquoted). A value that does not convert
    stays under its A1111 name. Also removes our U+200B escape (module docstring).
    """
    *lines, last = text.strip().split("\n")
    if len(_RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt = negative = ""
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE) :].strip()
        line = _unescape_line(line)
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    result: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative}
    for raw_key, raw_value in _RE_PARAM.findall(last):
        key = raw_key.strip()
        value = _unquote(raw_value)
        try:
            if key == "Size" and (match := _RE_SIZE.match(value)):
                result["width"], result["height"] = int(match[1]), int(match[2])
            elif key == "Steps":
                result["num_inference_steps"] = int(value)
            elif key == "CFG scale":
                result["guidance_scale"] = _finite(float(value))
            elif key == "Seed":
                result["seed"] = int(value)
            else:
                result[key] = value
        except ValueError:
            result[key] = value
    return result


def a1111_pairs(text: str) -> list[tuple[str, str]]:
    """The ``Key: value`` pairs of A1111 text's parameter line, in order, values unquoted (the
    line counts only with at least three pairs, as in A1111's parser)."""
    last = text.strip().split("\n")[-1]
    found = _RE_PARAM.findall(last)
    if len(found) < 3:
        return []
    return [(key.strip(), _unquote(value)) for key, value in found]


def _finite(number: float) -> float:
    if not math.isfinite(number):
        raise ValueError(number)
    return number


def _clean_text(text: str) -> str:
    """PNG-safe text: no NULs, lone surrogates replaced (they cannot be encoded)."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _escape_block(text: str) -> str:
    return "\n".join(_escape_line(line) for line in _clean_text(text).split("\n"))


def _escape_line(line: str) -> str:
    if _NEEDS_ESCAPE.match(line.strip()):
        return _ZWSP + line.lstrip()
    return line


def _unescape_line(line: str) -> str:
    # Only lines that _escape_line could have produced: ZWSP + a line that needed escaping.
    if line.startswith(_ZWSP) and _NEEDS_ESCAPE.match(line[1:]):
        return line[1:]
    return line


def _quote(value: object) -> str:
    """A1111's quoting, a little stricter: also quote what its regex would mangle."""
    text = str(value)
    if (
        any(char in text for char in ",:\n")
        or text != text.strip()
        or text.startswith('"')
        or any(ord(char) < 32 or ord(char) == 127 for char in text)
    ):
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            loaded = json.loads(value)
        except ValueError:
            return value
        return loaded if isinstance(loaded, str) else value
    return value


def metadata_from_a1111(text: str) -> ImageMetadata | None:
    """ImageMetadata from A1111 text, or None when it has no parameter line."""
    parsed = parse_a1111(text)
    known = ("num_inference_steps", "guidance_scale", "seed", "width")
    if not any(key in parsed for key in known):
        return None
    # The raw texts (ours, or Fooocus's) are exact where the lines are stripped; Fooocus's raw
    # prompt lacks its styles, though, so it is only taken when it is the same text.
    prompt, negative = parsed["prompt"], parsed["negative_prompt"]
    raw_prompt, raw_negative = parsed.get(RAW_PROMPT), parsed.get(RAW_NEGATIVE)
    used: set[str] = set()
    if isinstance(raw_prompt, str) and a1111_view(raw_prompt) == prompt:
        prompt = raw_prompt
        used.add(RAW_PROMPT)
    if isinstance(raw_negative, str) and a1111_view(raw_negative) == negative:
        negative = raw_negative
        used.add(RAW_NEGATIVE)
    extra = {k: v for k, v in parsed.items() if k not in _A1111_FIELDS and k not in used}
    return ImageMetadata(
        prompt=prompt,
        negative_prompt=negative,
        seed=parsed.get("seed", 0),
        randomize_seed=False,
        width=parsed.get("width", 1024),
        height=parsed.get("height", 1024),
        guidance_scale=parsed.get("guidance_scale", 4.5),
        num_inference_steps=parsed.get("num_inference_steps", 40),
        model=str(parsed.get("Model", "")),
        space=str(parsed.get("Space", "")),
        created_at="",
        extra=extra,
        backend=str(parsed.get("Backend", "")),
    )


def a1111_view(text: str) -> str:
    """What A1111's parser keeps of a prompt: each line stripped, leading blank lines dropped."""
    out = ""
    for line in _clean_text(text).split("\n"):
        out += ("" if out == "" else "\n") + line.strip()
    return out


_A1111_FIELDS = frozenset(
    {
        "prompt",
        "negative_prompt",
        "seed",
        "width",
        "height",
        "guidance_scale",
        "num_inference_steps",
        "Model",
        "Space",
        "Backend",
    }
)


def metadata_from_fooocus_json(text: str) -> ImageMetadata | None:
    """Fooocus's own scheme: a JSON object in ``parameters``."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        return None
    width = height = 1024
    size = re.findall(r"\d+", str(data.get("resolution", "")))
    if len(size) == 2:
        width, height = int(size[0]), int(size[1])
    return ImageMetadata(
        prompt=data["prompt"],
        negative_prompt=str(data.get("negative_prompt", "")),
        seed=int(data.get("seed", 0)),
        width=width,
        height=height,
        guidance_scale=float(data.get("guidance_scale", 4.5)),
        num_inference_steps=int(data.get("steps", 40)),
        model=str(data.get("base_model", "")),
        space="",
        created_at="",
        extra={"fooocus": data},
    )


# --- writing ------------------------------------------------------------------------------------


def png_info(meta: ImageMetadata) -> PngImagePlugin.PngInfo:
    """The PNG text chunks for ``meta``: ``parameters``, ``fooocus_scheme`` and ``sd35``."""
    info = PngImagePlugin.PngInfo()
    _add_text(info, PARAMETERS_KEY, to_a1111(meta))
    _add_text(info, FOOOCUS_SCHEME_KEY, "a1111")
    _add_text(info, JSON_KEY, meta.to_json())
    return info


def _add_text(info: PngImagePlugin.PngInfo, key: str, value: str) -> None:
    if value.isascii():
        info.add_text(key, value)
    else:
        info.add_itxt(key, value, zip=False)


# --- reading ------------------------------------------------------------------------------------


def read_metadata(source: Path | str | bytes | Image.Image) -> ImageMetadata | None:
    """The metadata of an image: ours (``sd35``) if present, else A1111 ``parameters``, else None.

    Never raises because of a PNG's text chunks (garbage is ignored); raises
    :class:`NotAnImageError` if ``source`` is not an image at all, and ``OSError`` if a path
    cannot be read.
    """
    return metadata_from_texts(read_texts(source))


def metadata_from_texts(texts: dict[str, str]) -> ImageMetadata | None:
    """Pick the best metadata out of an image's text chunks."""
    ours = texts.get(JSON_KEY)
    if ours:
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            return ImageMetadata.from_json(ours)
    parameters = texts.get(PARAMETERS_KEY)
    if not parameters:
        return None
    if parameters.lstrip().startswith("{"):
        with contextlib.suppress(ValueError, TypeError, OverflowError, RecursionError):
            return metadata_from_fooocus_json(parameters)
    # Not JSON after all: A1111 text whose prompt starts with "{" (e.g. "{red|blue} car").
    with contextlib.suppress(ValueError, TypeError, OverflowError, RecursionError):
        return metadata_from_a1111(parameters)
    return None


def read_texts(source: Path | str | bytes | Image.Image) -> dict[str, str]:
    """All text chunks (PNG) or the A1111 EXIF comment (JPEG/WebP) of an image, as strings."""
    if isinstance(source, Image.Image):
        return _texts_from_pillow(source)
    if isinstance(source, bytes):
        return _texts_from_stream(io.BytesIO(source), repr_name="<bytes>")
    path = Path(source)
    with open(path, "rb") as handle:
        return _texts_from_stream(handle, repr_name=str(path))


def _texts_from_stream(handle: BinaryIO, repr_name: str) -> dict[str, str]:
    if handle.read(8) == _PNG_SIGNATURE:
        return _png_texts(handle)
    handle.seek(0)
    try:
        with Image.open(handle) as image:
            return _texts_from_pillow(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise NotAnImageError(f"{repr_name} is not an image ({error}).") from error


def _png_texts(handle: BinaryIO) -> dict[str, str]:
    """Walk the PNG chunks ourselves: cheaper than Pillow (no decoding, no full read) and
    tolerant, since a broken chunk only ends the walk instead of failing the whole file."""
    texts: dict[str, str] = {}
    while True:
        header = handle.read(8)
        if len(header) < 8:
            break
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"iTXt", b"zTXt") or length > _MAX_TEXT_BYTES:
            handle.seek(length + 4, io.SEEK_CUR)
            continue
        data = handle.read(length)
        crc = handle.read(4)
        if len(data) < length or len(crc) < 4:
            break
        if zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
            continue  # damaged chunk: its text cannot be trusted
        decoded = _decode_text_chunk(kind, data)
        if decoded is not None and decoded[0] not in texts:
            texts[decoded[0]] = decoded[1]
    return texts


def _decode_text_chunk(kind: bytes, data: bytes) -> tuple[str, str] | None:
    key, sep, rest = data.partition(b"\0")
    if not sep or not key:
        return None
    try:
        if kind == b"tEXt":
            return key.decode("latin-1"), _decode_latin1_or_utf8(rest)
        if kind == b"zTXt":
            return key.decode("latin-1"), _decode_latin1_or_utf8(_inflate(rest[1:]))
        flag, method, rest = rest[0], rest[1], rest[2:]
        _lang, _, rest = rest.partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        if flag:
            if method != 0:
                return None
            text = _inflate(text)
        return key.decode("latin-1"), text.decode("utf-8")
    except (IndexError, ValueError, zlib.error):
        return None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk too large")
    return out


def _decode_latin1_or_utf8(data: bytes) -> str:
    # PNG says tEXt is Latin-1, but several tools write UTF-8 there; valid non-ASCII UTF-8 is
    # practically never what Latin-1 text looks like, so prefer it.
    if not data.isascii():
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode("utf-8")
    return data.decode("latin-1")


def _texts_from_pillow(image: Image.Image) -> dict[str, str]:
    texts: dict[str, str] = {}
    for key, value in image.info.items():
        if isinstance(value, PngImagePlugin.iTXt):
            texts[key] = str(value)
        elif isinstance(value, str):
            # Pillow decoded tEXt as Latin-1; undo that when the bytes were really UTF-8.
            try:
                texts[key] = _decode_latin1_or_utf8(value.encode("latin-1"))
            except UnicodeEncodeError:
                texts[key] = value
    if PARAMETERS_KEY not in texts:
        comment = _exif_user_comment(image)
        if comment:
            texts[PARAMETERS_KEY] = comment
    return texts


def _exif_user_comment(image: Image.Image) -> str | None:
    """A1111 stores parameters in EXIF UserComment for JPEG and WebP."""
    try:
        raw = image.getexif().get_ifd(0x8769).get(0x9286)
    except Exception:  # EXIF parsing of arbitrary files can fail in many ways
        return None
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes) or len(raw) < 8:
        return None
    prefix, body = raw[:8], raw[8:]
    try:
        if prefix == b"UNICODE\0":
            # piexif (used by A1111) writes UTF-16 big-endian; some tools write little-endian.
            if body[:1] == b"\0" or len(body) < 2:
                return body.decode("utf-16-be")
            return body.decode("utf-16-le" if body[1:2] == b"\0" else "utf-16-be")
        return body.decode("utf-8") if prefix.startswith(b"ASCII") else None
    except UnicodeDecodeError:
        return None
