"""Helpers for tests of the Inference backend: the stand-in, and huggingface_hub allowed to
call it (the test session keeps huggingface_hub offline; only loopback URLs are used here)."""

from __future__ import annotations

from collections.abc import Iterator

import huggingface_hub.constants
import pytest

from sd35.inference_standin import InferenceStandin, InferenceStandinConfig

TOKEN = "hf_SecretTokenValue0123456789abcdefXYZ"


@pytest.fixture
def hub_online(monkeypatch) -> None:
    """Let huggingface_hub make requests (to the loopback stand-ins these tests name)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def inference(hub_online) -> Iterator[InferenceStandin]:
    with InferenceStandin(InferenceStandinConfig()) as standin:
        yield standin
