"""``SpaceBackend``: today's ``SpaceClient`` behind the backend interface (the official Space,
a duplicate, or any Space with the same ``/infer`` API)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sd35.backends.base import Backend, BackendResult, BackendSpec, Capabilities
from sd35.params import MODEL_ID, GenerationRequest, SpaceSchema
from sd35.space_client import Event, Generation, Result, SpaceClient, space_url

#: What a Space offers; ``bounds`` are the documented ones until its schema has been read.
SPACE_CAPABILITIES = Capabilities(
    previews=True, step_progress=True, cancel=True, bounds=SpaceSchema(), can_bill=False
)


class SpaceBackend(Backend):
    """A Space through ``SpaceClient``. ``client`` is built by the caller (token decided by
    the one token rule), so tests and the app share one construction path."""

    def __init__(self, spec: BackendSpec, client: SpaceClient) -> None:
        self.spec = spec
        self.client = client
        self.has_token = client.has_token

    @classmethod
    def create(cls, spec: BackendSpec, *, token: str | None, **client_options: Any) -> SpaceBackend:
        # token=None would let SpaceClient read HF_TOKEN itself; "" means: none at all.
        return cls(spec, SpaceClient(spec.target, token=token or "", **client_options))

    @property
    def space(self) -> str:
        return self.client.space

    @property
    def url(self) -> str:
        return space_url(self.spec.target)

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        # Bounds follow the Space's own schema once it has been read.
        return dataclasses.replace(SPACE_CAPABILITIES, bounds=self.client.cached_schema())

    def schema(self) -> SpaceSchema:
        return self.client.cached_schema()

    def generate(self, request: GenerationRequest) -> _SpaceGeneration:
        return _SpaceGeneration(self, self.client.generate(request))

    def close(self) -> None:
        self.client.close()


class _SpaceGeneration:
    """The client's generation, with its ``Result`` turned into a ``BackendResult``."""

    def __init__(self, backend: SpaceBackend, inner: Generation) -> None:
        self._backend = backend
        self._inner = inner
        self.request = inner.request

    def cancel(self) -> None:
        self._inner.cancel()

    def _tag(self, event: Event) -> Event:
        if isinstance(event, Result) and not isinstance(event, BackendResult):
            fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(Result)}
            return BackendResult(
                **fields,
                backend=self._backend.name,
                model=MODEL_ID,
                space=self._backend.client.space,
            )
        return event

    def __iter__(self) -> Iterator[Event]:
        events = iter(self._inner)
        try:
            for event in events:
                yield self._tag(event)
        finally:
            events.close()  # type: ignore[attr-defined]  # a generator: cancels a running job

    async def __aiter__(self) -> AsyncIterator[Event]:
        events = self._inner.__aiter__()
        try:
            async for event in events:
                yield self._tag(event)
        finally:
            await events.aclose()  # type: ignore[attr-defined]  # at once, not at GC time
