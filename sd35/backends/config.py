"""Which backends to use, in failover order: ``--backend SPEC`` (repeatable), ``--space X``
(shorthand for ``--backend space:X``), else ``SD35_BACKENDS`` (comma-separated), else
``SD35_SPACE``, else the official Space alone, as before.

Backends that can bill the user's account (Inference Providers, Endpoints) exist only when
the user named them: the default never includes one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd35.backends.base import Backend, BackendSpec, parse_spec
from sd35.backends.inference import InferenceBackend
from sd35.backends.space import SpaceBackend
from sd35.errors import InvalidRequestError
from sd35.params import DEFAULT_SPACE
from sd35.space_client import SpaceClient, space_url
from sd35.tokens import is_hugging_face_url, origin, token_for


class _Append(argparse.Action):
    """``--backend SPEC`` and ``--space X`` append to one list, in command-line order; a
    ``--space`` entry is marked (it may receive a token given with ``--token-file``)."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        shorthand = option == "--space"
        items.append((f"space:{value}" if shorthand else value, shorthand))
        setattr(namespace, self.dest, items)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--space`` and ``--backend`` to ``parser`` (both fill ``args.backend_specs``)."""
    parser.add_argument(
        "--space",
        dest="backend_specs",
        action=_Append,
        metavar="ID_OR_URL",
        help="Space id or URL to drive (shorthand for --backend space:X; env SD35_SPACE)",
    )
    parser.add_argument(
        "--backend",
        dest="backend_specs",
        action=_Append,
        metavar="SPEC",
        help="a backend, in failover order (repeatable): space:OWNER/NAME, space:URL, "
        "inference:PROVIDER[:MODEL], endpoint:URL (env SD35_BACKENDS, comma-separated)",
    )


@dataclass(frozen=True)
class BackendChoice:
    """The configured backends, and the origins outside Hugging Face granted the token."""

    specs: tuple[BackendSpec, ...]
    token_origins: tuple[str, ...] = ()

    @property
    def first_space(self) -> str:
        """The first Space in the list (what older code calls "the Space")."""
        return next((s.target for s in self.specs if s.kind == "space"), DEFAULT_SPACE)


def choose_backends(
    given: Sequence[tuple[str, bool]] | None,
    *,
    env: Mapping[str, str] | None = None,
    token_explicit: bool = False,
) -> BackendChoice:
    """The backends from the command line (``args.backend_specs``), else the environment,
    else the default. Raises ``InvalidRequestError`` for a bad spec. ``token_explicit``: the
    token came from ``--token-file``, so a non-Hugging-Face ``--space`` URL may receive it."""
    env = os.environ if env is None else env
    entries = list(given or [])
    if not entries and env.get("SD35_BACKENDS", "").strip():
        entries = [(part, False) for part in env["SD35_BACKENDS"].split(",") if part.strip()]
    if not entries and env.get("SD35_SPACE", "").strip():
        entries = [(f"space:{env['SD35_SPACE'].strip()}", True)]
    if not entries:
        return BackendChoice((parse_spec(f"space:{DEFAULT_SPACE}", explicit=False),))
    specs: list[BackendSpec] = []
    origins: list[str] = []
    for text, shorthand in entries:
        spec = parse_spec(text)
        if spec.text in {s.text for s in specs}:
            continue  # the same backend twice would only be tried twice
        specs.append(spec)
        if shorthand and token_explicit:
            url = space_url(spec.target)
            if not is_hugging_face_url(url):
                origins.append(origin(url))
    return BackendChoice(tuple(specs), tuple(origins))


def build_backends(
    choice: BackendChoice,
    *,
    token: str | None,
    proxy: str | None = None,
    timeout: float = 900.0,
    download_dir: Path | None = None,
) -> list[Backend]:
    """One backend object per spec (no network I/O). The token goes only where
    ``sd35.tokens`` allows."""
    download_dir = download_dir or Path(tempfile.mkdtemp(prefix="sd35-downloads-"))
    backends: list[Backend] = []
    for spec in choice.specs:
        if spec.can_bill and not spec.explicit:  # never spend money the user did not ask for
            raise InvalidRequestError(
                "backend", spec.text, f"{spec.text} can bill your account: name it explicitly."
            )
        if spec.kind == "space":
            backends.append(
                SpaceBackend.create(
                    spec,
                    token=token_for(space_url(spec.target), token, granted=choice.token_origins),
                    proxy=proxy,
                    download_dir=download_dir,
                    timeout=timeout,
                )
            )
        else:
            backends.append(
                InferenceBackend(
                    spec,
                    token=token,
                    token_origins=choice.token_origins,
                    timeout=timeout,
                    download_dir=download_dir,
                )
            )
    return backends


def space_backend(client: SpaceClient) -> SpaceBackend:
    """A ``SpaceClient`` the caller built, as a backend named ``space:<its Space>``."""
    return SpaceBackend(BackendSpec("space", client.space), client)


def status_client(backends: Sequence[Any], *, proxy: str | None = None) -> SpaceClient:
    """The ``SpaceClient`` whose status and bounds the studio shows: the first Space backend's,
    else the official Space's, without a token (building it does no network I/O)."""
    client = next((b.client for b in backends if isinstance(b, SpaceBackend)), None)
    return client if client is not None else SpaceClient(DEFAULT_SPACE, token="", proxy=proxy)
