"""The studio service and the page's wording: plain functions, no browser."""

from __future__ import annotations

import asyncio
from dataclasses import astuple
from pathlib import Path

import pytest
from PIL import Image

from sd35.errors import InvalidRequestError, QuotaExceededError
from sd35.gallery import SQLiteGalleryStore
from sd35.metadata import ImageMetadata, read_metadata
from sd35.panels.form import FormValues
from sd35.panels.wording import error_markdown
from sd35.params import GenerationRequest, SpaceSchema
from sd35.space_client import Progress, Queued, Result, SpaceClient, SpaceStatus, Started
from sd35.studio import (
    Saved,
    Studio,
    caption,
    details_markdown,
    metadata_for,
    progress_line,
    status_line,
    thumbnail_for,
)


def test_status_line_says_what_is_known() -> None:
    space = "stabilityai/stable-diffusion-3-5-large"
    assert status_line(None, space=space, demo=False).startswith("⏳ Checking")
    assert "is up · 3 in queue" in status_line(SpaceStatus(True, 3), space=space, demo=False)
    down = status_line(SpaceStatus(False, problem="Could not reach it."), space=space, demo=False)
    assert "not answering: Could not reach it." in down
    odd = status_line(SpaceStatus(True, 0, "no /infer endpoint"), space=space, demo=False)
    assert "answers, but: no /infer endpoint" in odd
    assert "stand-in" in status_line(SpaceStatus(True, 0), space=space, demo=True)


def test_progress_lines() -> None:
    queued = progress_line(Queued(position=2, queue_size=5, eta=42.4), image_index=1, batch=1)
    assert queued == "⏳ Waiting in the Space's queue at position 3 of 5, about 42 s"
    assert progress_line(Started(), image_index=2, batch=3) == "Image 2 of 3: 🎨 Generating…"
    halfway = progress_line(Progress(10, 20), image_index=1, batch=1)
    assert "Step 10 of 20" in halfway and "██████████░░░░░░░░░░" in halfway


def test_error_markdown_names_the_kind() -> None:
    line = error_markdown(QuotaExceededError("You have exceeded your GPU quota", has_token=True))
    assert line.startswith("⚠️ **GPU quota exceeded** — You have exceeded your GPU quota.")


def form_request(*values: object, schema: SpaceSchema | None = None) -> GenerationRequest:
    """What the page does with the form's raw values (``FormValues.request``)."""
    return FormValues.of(*values).request(schema or SpaceSchema())


def test_form_values_take_slider_floats_and_validate() -> None:
    request = form_request("a cat", "", 512.0, 768.0, 4.5, 28.0, None, True)
    assert (request.width, request.height, request.num_inference_steps) == (512, 768, 28)
    assert request.seed == 0 and isinstance(request.width, int)
    with pytest.raises(InvalidRequestError, match="width = 700"):
        form_request("a cat", "", 700.0, 768.0, 4.5, 28.0, 1, True)
    with pytest.raises(InvalidRequestError, match="whole number"):
        form_request("a cat", "", 512.5, 768.0, 4.5, 28.0, 1, True)
    with pytest.raises(InvalidRequestError, match="enter a prompt"):
        form_request("  ", "", 512.0, 768.0, 4.5, 28.0, 1, True)


def test_stored_settings_go_back_into_the_form() -> None:
    meta = ImageMetadata(prompt="p", negative_prompt="n", seed=9, width=640, height=960)
    values = list(astuple(FormValues.from_meta(meta)))
    assert values == ["p", "n", 640, 960, 4.5, 40, 9, False]  # randomize off: same image again
    request = form_request(*values)
    assert request == meta.to_request()
    details = details_markdown(meta)
    for part in ("p", "n", "Seed 9", "640×960", "40 steps", "CFG 4.5", meta.model, meta.space):
        assert part in details


def _result(tmp_path: Path, seed: int = 5) -> Result:
    path = tmp_path / "image.webp"
    Image.new("RGB", (512, 512), "teal").save(path)
    request = GenerationRequest("a teal square", seed=1, width=512, height=512)
    return Result(path=path, seed=seed, elapsed=1.25, request=request)


def test_metadata_records_the_seed_actually_used(tmp_path) -> None:
    meta = metadata_for(_result(tmp_path, seed=777), space="owner/space")
    assert meta.seed == 777 and meta.space == "owner/space" and meta.elapsed == 1.25
    assert meta.model == "stabilityai-stable-diffusion-3.5-large"


def test_captions_shorten_long_prompts(tmp_path) -> None:
    store = SQLiteGalleryStore(tmp_path / "outputs")
    meta = ImageMetadata(prompt="x" * 100, seed=3, width=512, height=768)
    stored = store.save(Image.new("RGB", (512, 768)), meta)
    text = caption(stored)
    assert text.startswith("x" * 47 + "…") and text.endswith("seed 3 · 512×768")


def test_missing_thumbnail_is_made_again(tmp_path) -> None:
    store = SQLiteGalleryStore(tmp_path / "outputs")
    stored = store.save(Image.new("RGB", (512, 512)), ImageMetadata(prompt="p"))
    stored.thumbnail_path.unlink()
    assert thumbnail_for(store, stored).is_file()


def test_run_shows_the_image_then_stores_it(preview_space, tmp_path) -> None:
    client = SpaceClient(preview_space.url, download_dir=tmp_path / "downloads")
    studio = Studio(client, SQLiteGalleryStore(tmp_path / "outputs"))
    request = GenerationRequest("a stored fox", seed=8, randomize_seed=False, width=512, height=512)

    async def collect() -> list[object]:
        return [event async for event in studio.run(request, user="alice")]

    events = asyncio.run(collect())
    client.close()
    result, saved = events[-2], events[-1]
    assert isinstance(result, Result) and isinstance(saved, Saved)
    assert saved.image.path.suffix == ".png" and saved.image.user == "alice"
    meta = read_metadata(saved.image.path)
    assert meta is not None and meta.seed == 8 and meta.prompt == "a stored fox"
    assert studio.store.list(user="alice").total == 1


def test_generate_saves_each_image_of_a_batch_and_says_which_it_is(space, tmp_path) -> None:
    client = SpaceClient(space.url, download_dir=tmp_path / "downloads")
    studio = Studio(client, SQLiteGalleryStore(tmp_path / "outputs"))
    request = GenerationRequest(
        "two foxes", seed=41, randomize_seed=False, width=512, height=512, num_inference_steps=2
    )

    async def collect() -> list[tuple[int, object]]:
        return [item async for item in studio.generate(request, 2, "bob")]

    events = asyncio.run(collect())
    client.close()
    saved = [(index, event) for index, event in events if isinstance(event, Saved)]
    assert [index for index, _ in saved] == [1, 2]  # each event names its image
    assert [event.result.seed for _, event in saved] == [41, 42]  # consecutive fixed seeds
    assert {event.image.user for _, event in saved} == {"bob"}
    assert studio.gallery("bob").total == 2 and studio.gallery("alice").total == 0
