"""Backends: where images are made (Spaces, Inference Providers, Inference Endpoints), behind
one interface, with the one token rule. See ``base`` for the interface and the specs."""

from sd35.backends.base import (
    DEFAULT_MODEL,
    Backend,
    BackendResult,
    BackendSpec,
    Capabilities,
    parse_spec,
)
from sd35.backends.config import (
    BackendChoice,
    add_backend_arguments,
    build_backends,
    choose_backends,
)
from sd35.backends.errors import (
    AllBackendsPausedError,
    BackendAuthError,
    CreditsExhaustedError,
    ModelNotServedError,
    RateLimitedError,
)
from sd35.backends.inference import InferenceBackend
from sd35.backends.space import SpaceBackend
from sd35.tokens import is_hugging_face_url, may_receive_token

__all__ = [
    "DEFAULT_MODEL",
    "AllBackendsPausedError",
    "Backend",
    "BackendAuthError",
    "BackendChoice",
    "BackendResult",
    "BackendSpec",
    "Capabilities",
    "CreditsExhaustedError",
    "InferenceBackend",
    "ModelNotServedError",
    "RateLimitedError",
    "SpaceBackend",
    "add_backend_arguments",
    "build_backends",
    "choose_backends",
    "is_hugging_face_url",
    "may_receive_token",
    "parse_spec",
]
