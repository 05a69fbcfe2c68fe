"""The save path and the remote-compute stand-in: what issue 19 changed, against real servers
on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from gradio_client import Client
from PIL import Image, ImageChops

from sd35.gallery import SQLiteGalleryStore
from sd35.metadata import ImageMetadata, png_info, read_metadata
from sd35.png_writer import encode_png
from sd35.provider import ImageResponse, StabilityAI_SD35Large
from sd35.standin import StandinConfig, StandinServer, textured_image
from sd35.studio import thumbnail_for


def _meta(prompt: str = "a quick fox ☃") -> ImageMetadata:
    return ImageMetadata(prompt=prompt, space="local", created_at="2026-12-01T10:00:00", seed=5)


def test_fast_png_keeps_every_pixel_and_the_metadata() -> None:
    for image in (
        textured_image(640, 384, 1),
        textured_image(256, 256, 2).convert("RGBA"),
    ):
        data = encode_png(image, png_info(_meta()))
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
