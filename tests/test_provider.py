"""The seed's provider interface, run as the seed's example shows, against the stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from sd35.errors import InvalidRequestError, QuotaExceededError
from sd35.metadata import read_metadata
from sd35.provider import ImagePreview, ImageResponse, StabilityAI_SD35Large, last_user_message


def provider_for(server) -> type[StabilityAI_SD35Large]:
    class Local(StabilityAI_SD35Large):
        url = server.url  # overriding the class attribute points the provider elsewhere

    return Local


def collect(provider, tmp_path: Path, **kwargs) -> list[object]:
    async def run() -> list[object]:
        results = []
        async for result in provider.create_async_generator(
            model=kwargs.pop("model", "stabilityai-stable-diffusion-3.5-large"),
            messages=kwargs.pop("messages", [{"role": "user", "content": "photo of a cat"}]),
            output_dir=tmp_path / "outputs",
            **kwargs,
        ):
            results.append(result)
        return results

    return asyncio.run(run())


def test_the_seeds_example_prints_preview_and_final_urls(preview_space, tmp_path, capsys):
    provider = provider_for(preview_space)
    for result in collect(provider, tmp_path, width=512, height=512, num_inference_steps=8):
        if isinstance(result, ImagePreview):
            print(f"Generated image preview URL: {result.url}")
        elif isinstance(result, ImageResponse):
            print(f"Generated image URL: {result.url}")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Generated image preview URL: file://")
    assert lines[-1].startswith("Generated image URL: file://")
    assert sum("preview" in line for line in lines) >= 2


def test_final_image_is_saved_with_metadata_and_the_seed_used(space, tmp_path) -> None:
    results = collect(
        provider_for(space), tmp_path, aspect_ratio="16:9", seed=77, randomize_seed=False
    )
    final = results[-1]
    assert isinstance(final, ImageResponse) and not isinstance(final, ImagePreview)
    assert final.alt == "photo of a cat" and final.seed == 77
    assert final.path.is_file() and final.path.suffix == ".png"
    assert (tmp_path / "outputs") in final.path.parents  # saved, not left on the Space
    with Image.open(final.path) as image:
        assert image.size == (1024, 576)
    meta = read_metadata(final.path)
    assert meta is not None and meta.seed == 77 and meta.prompt == "photo of a cat"
    assert meta.num_inference_steps == 40  # the Space's own default, not the seed's 50
    sent = space.config.seen_inputs[-1]
    assert sent["negative_prompt"] == ""  # never None


def test_explicit_prompt_and_aliases(space, tmp_path) -> None:
    for model in ("sd-3.5", "sd-3.5-large"):
        results = collect(
            provider_for(space),
            tmp_path,
            model=model,
            prompt="a lighthouse",
            width=512,
            height=512,
            num_inference_steps=4,
        )
        assert results[-1].alt == "a lighthouse"


def test_unknown_model_and_bad_sizes_are_refused_before_sending(space, tmp_path) -> None:
    with pytest.raises(InvalidRequestError, match="Unknown model 'dall-e-3'"):
        collect(provider_for(space), tmp_path, model="dall-e-3")
    with pytest.raises(InvalidRequestError, match="nearest ratio that fits is 2:1"):
        collect(provider_for(space), tmp_path, aspect_ratio="21:9")
    with pytest.raises(InvalidRequestError, match="width = 300"):
        collect(provider_for(space), tmp_path, width=300, height=512)
    assert space.config.seen_inputs == []


def test_remote_errors_keep_their_type(space, tmp_path) -> None:
    space.config.fault_once = "quota"
    with pytest.raises(QuotaExceededError, match="Create a free account"):
        collect(provider_for(space), tmp_path, width=512, height=512)


def test_leaving_early_cancels_the_remote_job(preview_space, tmp_path) -> None:
    config = preview_space.config
    config.seconds_per_step = 0.05
    finished, ended = config.jobs_finished, config.jobs_ended

    async def first_preview_only() -> ImagePreview:
        generator = provider_for(preview_space).create_async_generator(
            model="sd-3.5",
            messages=[{"role": "user", "content": "a slow one"}],
            width=512,
            height=512,
            num_inference_steps=40,
            output_dir=tmp_path,
        )
        async for result in generator:
            await generator.aclose()
            return result
        raise AssertionError("no preview")

    assert isinstance(asyncio.run(first_preview_only()), ImagePreview)
    config.wait_ended(ended + 1)
    assert config.jobs_finished == finished


def test_last_user_message() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "a red"}, {"type": "text", "text": "fox"}],
        },
        {"role": "system", "content": "ignored"},
    ]
    assert last_user_message(messages) == "a red fox"
    assert last_user_message([]) == ""


def test_a_bound_studio_takes_the_calls(space, tmp_path) -> None:
    from sd35.gallery import SQLiteGalleryStore
    from sd35.space_client import SpaceClient
    from sd35.studio import Studio

    studio = Studio(SpaceClient(space.url), SQLiteGalleryStore(tmp_path / "bound"))
    provider = provider_for(space)
    provider.bind(studio)

    async def one() -> ImageResponse:
        async for result in provider.create_async_generator(
            model="sd-3.5", messages=[], prompt="a bound fern", width=512, height=512
        ):
            if isinstance(result, ImageResponse):
                await result.saved()
                return result
        raise AssertionError("no image")

    final = asyncio.run(one())
    assert (tmp_path / "bound") in final.path.parents  # the bound studio's gallery
    assert studio.gallery(None).total == 1
    assert provider.studio() is studio
