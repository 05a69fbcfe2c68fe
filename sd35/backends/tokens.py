"""Which hosts may receive the Hugging Face token: one rule for every backend.

The token belongs to Hugging Face: Spaces (``*.hf.space``), the Hub and its Inference
Providers router (``huggingface.co`` and its subdomains), and Inference Endpoints
(``*.endpoints.huggingface.cloud``), over HTTPS. Anywhere else it goes only where the user
granted it explicitly (an origin in ``granted``), never because it happened to be in the
environment. (Issue 13 adds the app-wide version of this rule; the two are to be one.)
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection

#: Host suffixes of Hugging Face's own services (matched on a dot boundary).
HF_HOST_SUFFIXES = ("huggingface.co", "hf.space", "endpoints.huggingface.cloud", "hf.co")


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (lower case, default ports made explicit)."""
    parts = urllib.parse.urlsplit(url)
    scheme = (parts.scheme or "https").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def is_hf_host(url: str) -> bool:
    """True for an HTTPS URL on one of Hugging Face's hosts."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https" or not host:
        return False
    return any(host == suffix or host.endswith("." + suffix) for suffix in HF_HOST_SUFFIXES)


def may_receive_token(url: str, granted: Collection[str] = ()) -> bool:
    """Whether the token may be sent to ``url``: a Hugging Face host, or an origin the user
    granted it to explicitly."""
    return is_hf_host(url) or origin(url) in {origin(g) for g in granted}


def token_for(url: str, token: str | None, granted: Collection[str] = ()) -> str | None:
    """``token`` when ``url`` may receive it, else None."""
    return token if token and may_receive_token(url, granted) else None
