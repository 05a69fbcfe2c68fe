"""The save path and the remote-compute stand-in: what issue 19 changed, against real servers
on 127.0.0.1."""

from __future__ import annotations

import asyncio
import importlib
import io
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from PIL import Image, ImageChops

from harness import free_port
from sd35.gallery import SQLiteGalleryStore
from sd35.metadata import ImageMetadata, png_info, read_metadata
from sd35.png_writer import encode_png
from sd35.provider import ImageResponse, StabilityAI_SD35Large
from sd35.standin import StandinConfig, StandinServer, textured_image
from sd35.studio import thumbnail_for
from tests.studio_support import generate_args

ROOT = Path(__file__).resolve().parents[1]


def _meta(prompt: str = "a quick fox ☃") -> ImageMetadata:
    return ImageMetadata(prompt=prompt, space="local", created_at="2026-12-01T10:00:00", seed=5)


@pytest.mark.parametrize("engine", ["isal", "zlib"])
def test_fast_png_keeps_every_pixel_and_the_metadata(engine: str) -> None:
    # ISA-L where it is installed (requirements.txt), zlib where it has no wheel.
    deflate = importlib.import_module("isal.isal_zlib" if engine == "isal" else "zlib")
    for image in (
        textured_image(640, 384, 1),
        textured_image(256, 256, 2).convert("RGBA"),
    ):
        data = encode_png(image, png_info(_meta()), deflate=deflate)
        with Image.open(io.BytesIO(data)) as back:
            back.load()
            assert back.format == "PNG" and back.mode == image.mode
            assert ImageChops.difference(back, image).getbbox() is None
        assert read_metadata(data) == _meta()


def test_saved_result_has_its_thumbnail_made_when_first_listed(tmp_path: Path) -> None:
    store = SQLiteGalleryStore(tmp_path)
    item = store.save(textured_image(512, 512, 0), _meta(), thumbnail=False)
    assert item.path.is_file() and not item.thumbnail_path.exists()
    with Image.open(item.path) as png:
        assert png.size == (512, 512)
    thumb = thumbnail_for(store, item)
    assert thumb == item.thumbnail_path and thumb.is_file()
    with Image.open(thumb) as small:
        assert small.size == (256, 256)


def test_premade_standin_serves_its_stock_and_paints_nothing_per_job() -> None:
    config = StandinConfig(seconds_per_step=0.001, premade=True, concurrency=2)
    with StandinServer(config) as server:
        client = Client(server.url, verbose=False)
        try:
            first, seed = client.predict("one", "", 7, False, 1024, 1024, 4.5, 3, api_name="/infer")
            again, _ = client.predict("two", "", 7, False, 1024, 1024, 4.5, 3, api_name="/infer")
            other, _ = client.predict("one", "", 8, False, 1024, 1024, 4.5, 3, api_name="/infer")
        finally:
            client.close()
    assert seed == 7
    # Same seed, another prompt: the same stock picture (nothing painted for the job).
    assert Path(first).read_bytes() == Path(again).read_bytes()
    assert Path(first).read_bytes() != Path(other).read_bytes()
    with Image.open(first) as image:
        assert image.format == "WEBP" and image.size == (1024, 1024)


def test_provider_hands_over_the_response_and_the_png_follows(space, tmp_path: Path) -> None:
    class Local(StabilityAI_SD35Large):
        url = space.url

    async def first_response() -> ImageResponse:
        generator = Local.create_async_generator(
            "sd-3.5",
            [{"role": "user", "content": "a lighthouse"}],
            width=512,
            height=512,
            num_inference_steps=2,
            output_dir=tmp_path,
        )
        async for item in generator:
            if isinstance(item, ImageResponse):
                await generator.aclose()  # the caller stops at the response, as the seed's do
                return item
        raise AssertionError("no ImageResponse")

    response = asyncio.run(first_response())
    path = response.wait_saved(timeout=30)  # the PNG is written even though nobody iterated on
    assert path == response.path and response.url == path.as_uri() and path.is_file()
    meta = read_metadata(path)
    assert meta is not None and meta.prompt == "a lighthouse" and meta.seed == response.seed
    assert SQLiteGalleryStore(tmp_path).get(response.options["id"]) is not None


def _switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` so far (each sleep of a thread
    that wakes up again counts one)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def test_an_idle_app_sleeps_and_still_answers_at_once(space, tmp_path: Path) -> None:
    """Gradio's queue loop would wake 1,000 times a second with nothing to do
    (sd35/gradio_tuning.py); the app's queue still starts a job at once."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    args = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--space", space.url]
    app = subprocess.Popen(
        [*args, "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert app.poll() is None and time.monotonic() < deadline, "the app did not start"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        client = Client(url, verbose=False)
        try:
            client.predict(*generate_args("warm up", steps=2), api_name="/generate")
            before, began = _switches(app.pid), time.monotonic()
            time.sleep(2.0)  # measuring a rate over a span of time, not waiting for a signal
            rate = (_switches(app.pid) - before) / (time.monotonic() - began)
            assert rate < 400, f"{rate:.0f} wake-ups a second while idle"
            began = time.monotonic()
            job = client.submit(*generate_args("at once", steps=2), api_name="/generate")
            assert str(job.result(timeout=30)[1]).startswith("✅")
            assert time.monotonic() - began < 5.0
        finally:
            client.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
