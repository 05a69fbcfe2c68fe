"""The one rule for where the Hugging Face token may go (app, CLI, provider, any backend).

A token goes to Hugging Face hosts over HTTPS: Spaces (``*.hf.space``), the Hub and its
Inference Providers router (``huggingface.co``, ``hf.co`` and their subdomains) and Inference
Endpoints (``*.endpoints.huggingface.cloud``). It goes anywhere else only when the user gave it
for that target explicitly (``--token-file`` together with a non-Hugging-Face ``--space``, whose
origin is then *granted* the token, or ``token=`` in code); a token picked up from the
environment (``HF_TOKEN``) never leaves Hugging Face. When a token goes to another host the
log says so, once per host, without the token.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger("sd35.tokens")

#: Hosts (and their subdomains) that belong to Hugging Face.
HF_DOMAINS = ("huggingface.co", "hf.co", "hf.space", "endpoints.huggingface.cloud")

_announced: set[str] = set()
_announced_lock = threading.Lock()


def is_hugging_face_url(url: str) -> bool:
    """True when ``url``'s host is a Hugging Face host (https only, so it cannot be read on
    the way)."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https":
        return False
    return any(host == domain or host.endswith("." + domain) for domain in HF_DOMAINS)


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (lower case, default ports made explicit)."""
    parts = urllib.parse.urlsplit(url)
    scheme = (parts.scheme or "https").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def may_receive_token(url: str, granted: Collection[str] = ()) -> bool:
    """Whether a token may go to ``url``: a Hugging Face host, or an origin the user granted it
    to explicitly."""
    return is_hugging_face_url(url) or origin(url) in {origin(g) for g in granted}


def token_for(
    url: str, token: str | None, explicit: bool = False, granted: Collection[str] = ()
) -> str | None:
    """The token to send to ``url``, or None.

    ``explicit`` says the user gave this token for this very target (an argument in code);
    ``granted`` lists the origins the user gave it for (``--token-file`` with ``--space URL``).
    A Hugging Face URL gets the token either way; another URL only an explicit or granted one
    (and the log names the host once)."""
    if not token:
        return None
    if is_hugging_face_url(url):
        return token
    if not (explicit or may_receive_token(url, granted)):
        return None
    host = urllib.parse.urlsplit(url).netloc or url
    with _announced_lock:
        first = host not in _announced
        _announced.add(host)
    if first:
        log.warning(
            "Sending the Hugging Face token you gave explicitly to %s, which is not a Hugging "
            "Face host.",
            host,
        )
    return token


def environment_token() -> str | None:
    """``HF_TOKEN`` from the environment (an implicit token), or None."""
    return os.environ.get("HF_TOKEN") or None


def read_token_file(token_file: str | Path) -> str | None:
    """The first line of a ``--token-file``; ``OSError`` when it cannot be read."""
    text = Path(token_file).read_text(encoding="utf-8").strip()
    return text.splitlines()[0].strip() if text else None


def resolve_token(url: str, token_file: str | Path | None) -> str | None:
    """The token to send to ``url`` given a ``--token-file`` option: the file's first line
    (explicit), else ``HF_TOKEN`` (implicit: Hugging Face hosts only).

    Raises ``OSError`` when the token file cannot be read."""
    if token_file:
        return token_for(url, read_token_file(token_file), explicit=True)
    return token_for(url, environment_token(), explicit=False)
