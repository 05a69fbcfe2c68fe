"""The provider beside the seed's own provider, one call after the other, on one stand-in.

    .venv-bench/bin/python -m bench.provider_race --space URL [--runs N] [--output-dir DIR]

Runs in the benchmark's own environment (``bench/requirements.txt``: g4f). g4f's
``StabilityAI_SD35Large`` is used as installed: its ``url`` is a class attribute, so setting it
to the stand-in's loopback URL points every request it makes (``POST {url}/gradio_api/call/
infer``, then the event stream ``GET .../{event_id}``) there, with no edit of its source. Ours
is ``sd35.provider.StabilityAI_SD35Large`` with its ``url`` set the same way. For reference a
bare ``gradio_client`` ``predict`` (which downloads the image) runs in the same rounds.

Each call is timed from the call to the ``ImageResponse`` (the seed's: the Space's URL of the
image; ours: the gallery PNG's path, handed over while the PNG is written) and, for ours, to
the PNG stored; with this process's CPU time over the whole call (the save included). The
order of the three rotates every round. One JSON object per call goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPT = "a provider race"
SIZE = 1024
STEPS = 40


def _race(provider: Any, **extra: Any) -> Any:
    """The provider's stream for the race's prompt, size and steps (the same for both)."""
    messages = [{"role": "user", "content": PROMPT}]
    return provider.create_async_generator(
        "sd-3.5-large", messages, width=SIZE, height=SIZE, num_inference_steps=STEPS, **extra
    )


async def seed_call(space: str) -> dict[str, Any]:
    """The seed's provider (g4f), to its ``ImageResponse``."""
    from g4f.Provider.hf_space.StabilityAI_SD35Large import StabilityAI_SD35Large as Seed
    from g4f.providers.response import ImageResponse

    Seed.url = space.rstrip("/")
    began = time.perf_counter()
    async for item in _race(Seed):
        if isinstance(item, ImageResponse):
            return {"seconds": time.perf_counter() - began, "image": str(item.urls)[:120]}
    raise RuntimeError("the seed's provider gave no ImageResponse")


async def our_call(space: str, output_dir: Path) -> dict[str, Any]:
    """sd35's provider, to its ``ImageResponse`` (the PNG saved in the gallery)."""
    from sd35.provider import ImageResponse, StabilityAI_SD35Large

    StabilityAI_SD35Large.url = space
    began = time.perf_counter()
    async for item in _race(StabilityAI_SD35Large, output_dir=output_dir):
        if isinstance(item, ImageResponse):
            seconds = time.perf_counter() - began
            if hasattr(item, "saved"):  # older versions saved before answering
                await item.saved()  # the PNG is written while the caller has the response
            stored = time.perf_counter() - began
            return {"seconds": seconds, "stored": stored, "image": str(item.path)}
    raise RuntimeError("sd35's provider gave no ImageResponse")


def bare_call(client: Any) -> dict[str, Any]:
    """A bare ``gradio_client`` ``predict`` of ``/infer`` (downloads the image)."""
    began = time.perf_counter()
    image, _seed = client.predict(PROMPT, "", 0, True, SIZE, SIZE, 4.5, STEPS, api_name="/infer")
    return {"seconds": time.perf_counter() - began, "image": str(image)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--output-dir", type=Path)
    args = parser.parse_args(argv)
    import httpx
    from gradio_client import Client

    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="sd35-bench-provider-"))
    bare = Client(args.space, verbose=False, ssl_verify=httpx.create_ssl_context())
    calls = {
        "seed": lambda: asyncio.run(seed_call(args.space)),
        "ours": lambda: asyncio.run(our_call(args.space, output_dir)),
        "bare": lambda: bare_call(bare),
    }
    names = list(calls)
    for name in names:  # warm-up: imports, first connections
        calls[name]()
    for index in range(args.runs):
        for name in names[index % 3 :] + names[: index % 3]:
            cpu = time.process_time()
            row = calls[name]()
            row.update(path=name, run=index, cpu=time.process_time() - cpu)
            print(json.dumps(row), flush=True)
    bare.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
