"""What a remote-compute image costs in CPU before any of the studio's own code runs.

    python -m bench.cpu_floor --space URL     # needs a --premade stand-in at URL

The studio's work per image has three parts that no change of ours can take below what their
tools cost: Gradio serving a ``/generate`` job to its caller, ``gradio_client`` fetching the
Space's answer (the second hop), and turning the Space's WebP into a PNG. Each is measured
here on its own:

- Gradio alone: a Blocks app with one ``/generate`` that waits the job's time (an asyncio
  sleep) and answers with a PNG already in Gradio's cache (as ``sd35.page_files`` hands it),
  with the studio's Gradio settings (``sd35.gradio_tuning``); its CPU per job at 1 and 8
  sessions, as the remote-compute section measures the studio's.
- The hop: a ``gradio_client`` ``/infer`` call to the stand-in that downloads the WebP (the
  shared TLS context, as ``SpaceClient`` makes it); this process's CPU per call.
- The save: the stand-in's WebP decoded and written as PNG bytes (``sd35.png_writer``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client
from PIL import Image

from bench.common import ROOT, median
from bench.servers import cpu_seconds
from harness import free_port, offline_environment, stop_process, wait_for_http
from sd35.metadata import ImageMetadata
from sd35.png_writer import png_bytes
from sd35.standin import textured_image

SIZE = 1024


def serve(port: int, seconds: float) -> None:
    """The Gradio-alone app (runs until killed)."""
    import gradio as gr

    from sd35.gradio_tuning import tune_gradio
    from sd35.page_files import PageFiles

    source = Path(tempfile.mkdtemp(prefix="sd35-floor-")) / "image.png"
    source.write_bytes(png_bytes(textured_image(SIZE, SIZE, 0), _meta()))
    files = PageFiles()

    async def generate(prompt: str) -> tuple[str, str]:
        await asyncio.sleep(seconds)
        return files.for_page(source), "✅ Done"

    with gr.Blocks() as page:
        prompt = gr.Textbox()
        image = gr.Image(type="filepath", format="png")
        status = gr.Markdown()
        gr.Button().click(generate, prompt, [image, status], api_name="generate")
    page.queue(default_concurrency_limit=8)
    tune_gradio(page)
    page.launch(server_name="127.0.0.1", server_port=port, quiet=True)


def _meta() -> ImageMetadata:
    return ImageMetadata(prompt="a floor", space="local", created_at="2026-12-01T10:00:00", seed=1)


def gradio_alone(seconds: float, sizes: tuple[int, ...], rounds: int) -> dict[int, float]:
    """CPU seconds per job of the Gradio-alone app, per number of sessions at once."""
    port = free_port()
    args = [sys.executable, "-m", "bench.cpu_floor", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*args, "--seconds", str(seconds)],
        cwd=ROOT,
        env=offline_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    tls = httpx.create_ssl_context()
    clients: list[Client] = []
    try:
        wait_for_http(url, timeout=180, process=process)
        clients = [
            Client(url, verbose=False, download_files=False, ssl_verify=tls)
            for _ in range(max(sizes))
        ]
        per_job: dict[int, list[float]] = {}
        for size in (max(sizes), *sizes):  # the first round warms every session up
            for _ in range(rounds):
                before = cpu_seconds(process.pid)
                jobs = [client.submit("a floor", api_name="/generate") for client in clients[:size]]
                for job in jobs:
                    job.result(timeout=120)
                per_job.setdefault(size, []).append((cpu_seconds(process.pid) - before) / size)
        return {size: median(per_job[size][-rounds:]) for size in sizes}
    finally:
        for client in clients:
            client.close()
        stop_process(process)


def hop(space: str, request_inputs: list[Any], runs: int) -> float:
    """CPU seconds of this process per ``/infer`` call that downloads the WebP."""
    folder = tempfile.mkdtemp(prefix="sd35-floor-hop-")
    client = Client(
        space, verbose=False, download_files=folder, ssl_verify=httpx.create_ssl_context()
    )
    try:
        client.predict(*request_inputs, api_name="/infer")  # warm-up
        costs = []
        for _ in range(runs):
            began = time.process_time()
            client.predict(*request_inputs, api_name="/infer")
            costs.append(time.process_time() - began)
        return median(costs)
    finally:
        client.close()


def save(runs: int) -> float:
    """CPU seconds to decode a 1024×1024 WebP of the stand-in's stock and encode its PNG."""
    buffer = io.BytesIO()
    textured_image(SIZE, SIZE, 1).save(buffer, "WEBP")
    data = buffer.getvalue()
    costs = []
    for _ in range(runs):
        began = time.process_time()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            png_bytes(image, _meta())
        costs.append(time.process_time() - began)
    return min(costs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["serve", "measure"], default="measure")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--space", help="a --premade stand-in's URL (measure)")
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args.port, args.seconds)
        return 0
    from bench.remote_compute import REQUEST, STEP_SECONDS, STEPS

    figures = {
        "gradio": gradio_alone(STEPS * STEP_SECONDS, (1, 8), 3),
        "hop": hop(args.space, REQUEST.as_inputs(), 5) if args.space else None,
        "save": save(3),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.exit(main())
