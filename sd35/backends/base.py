"""The backend interface: anything that turns a ``GenerationRequest`` into the typed events of
``sd35.space_client`` (``Queued``, ``Started``, ``Progress``, ``Preview``, ``Result``), with a
``cancel()``, and says up front what it can do.

Backends are named by a *spec*, the string the user configures (``--backend SPEC``):

    space:OWNER/NAME  space:URL          a Space with the SD 3.5 ``/infer`` API
    inference:PROVIDER[:MODEL]           Hugging Face Inference Providers (``auto`` lets HF pick)
    endpoint:URL                         an Inference Endpoint (or any server of that wire format)
"""

from __future__ import annotations

import abc
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sd35.errors import InvalidRequestError
from sd35.params import GenerationRequest, SpaceSchema
from sd35.space_client import Event, Result

DEFAULT_MODEL = "stabilityai/stable-diffusion-3.5-large"
KINDS = ("space", "inference", "endpoint")


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the page and the scheduler adapt to it."""

    previews: bool
    step_progress: bool
    #: True when ``cancel()`` stops the remote work (not just our wait for it).
    cancel: bool
    #: Size, guidance and steps bounds (and seed range) the backend accepts.
    bounds: SpaceSchema
    #: True when a call may cost the user money (Inference Providers, Endpoints).
    can_bill: bool


@dataclass(frozen=True)
class BackendSpec:
    """A parsed ``--backend`` value. ``text`` is its canonical form, without any secret (URL
    credentials, query strings), and doubles as the backend's name."""

    kind: str
    target: str
    model: str | None = None
    #: The user named this backend (``--backend``, ``--space`` or ``SD35_BACKENDS``), as
    #: opposed to the default. Billing backends exist only when explicit.
    explicit: bool = True

    @property
    def text(self) -> str:
        target = _without_secrets(self.target)
        if self.kind == "inference" and self.model and self.model != DEFAULT_MODEL:
            return f"inference:{target}:{self.model}"
        return f"{self.kind}:{target}"

    @property
    def can_bill(self) -> bool:
        return self.kind in ("inference", "endpoint")


@dataclass(frozen=True)
class BackendResult(Result):
    """The final image, plus which backend and model made it (for provenance)."""

    backend: str = ""
    model: str = ""
    space: str = ""


class Generation(Protocol):
    """One run: iterate for events (``for`` or ``async for``); ``cancel()`` ends it."""

    def cancel(self) -> None: ...

    def __iter__(self) -> Iterator[Event]: ...

    def __aiter__(self) -> AsyncIterator[Event]: ...


class Backend(abc.ABC):
    """Makes images for requests. Constructing one does no network I/O."""

    spec: BackendSpec
    capabilities: Capabilities
    #: Whether this backend sends a Hugging Face token (never the token itself).
    has_token: bool = False

    @property
    def name(self) -> str:
        return self.spec.text

    @property
    def space(self) -> str:
        """The Space behind this backend ("" when it is not a Space)."""
        return ""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> Generation:
        """Start nothing yet: a generation to iterate or cancel. Its ``Result`` is a
        ``BackendResult`` naming this backend."""

    def schema(self) -> SpaceSchema:
        """The bounds to validate requests against (no network)."""
        return self.capabilities.bounds

    def close(self) -> None:
        """Release connections; running generations keep theirs."""
        return None  # nothing held by default

    def __repr__(self) -> str:  # never a token
        return f"{type(self).__name__}({self.name!r})"


@dataclass
class BackendSettings:
    """What every backend built from specs shares."""

    token: str | None = None
    #: Origins (``scheme://host:port``) outside Hugging Face the user gave the token to.
    token_origins: tuple[str, ...] = ()
    proxy: str | None = None
    timeout: float = 900.0
    download_dir: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)


def parse_spec(text: str, *, explicit: bool = True) -> BackendSpec:
    """Parse ``space:…``, ``inference:PROVIDER[:MODEL]`` or ``endpoint:URL``; raises
    ``InvalidRequestError`` (field ``backend``) saying what is accepted."""
    raw = text.strip()
    kind, sep, rest = raw.partition(":")
    kind = kind.lower()
    if not sep or kind not in KINDS or not rest.strip():
        raise InvalidRequestError(
            "backend",
            raw,
            f"{raw!r} is not a backend: use space:OWNER/NAME, space:URL, inference:PROVIDER, "
            "inference:PROVIDER:MODEL or endpoint:URL.",
        )
    rest = rest.strip()
    if kind == "space":
        if not (_is_url(rest) or re.fullmatch(r"[\w.-]+/[\w.-]+", rest)):
            raise InvalidRequestError(
                "backend", raw, f"{rest!r} is neither a Space id (OWNER/NAME) nor a URL."
            )
        return BackendSpec("space", rest, explicit=explicit)
    if kind == "endpoint":
        if not _is_url(rest):
            raise InvalidRequestError("backend", raw, f"endpoint needs a URL, not {rest!r}.")
        return BackendSpec("endpoint", rest, model=rest, explicit=explicit)
    provider, _, model = rest.partition(":")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", provider):
        raise InvalidRequestError("backend", raw, f"{provider!r} is not a provider name.")
    model = model.strip() or DEFAULT_MODEL
    if not (re.fullmatch(r"[\w.-]+/[\w.-]+", model) or _is_url(model)):
        raise InvalidRequestError(
            "backend", raw, f"{model!r} is neither a Hub model id (OWNER/NAME) nor a URL."
        )
    return BackendSpec("inference", provider, model=model, explicit=explicit)


def _is_url(text: str) -> bool:
    parts = urllib.parse.urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _without_secrets(target: str) -> str:
    """A URL without user:password and query (where keys hide); anything else as given."""
    if not _is_url(target):
        return target
    parts = urllib.parse.urlsplit(target)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
