"""The OpenAI, AUTOMATIC1111 and MCP APIs (``sd35.api``), each through its real client
(``openai``, ``webuiapi``, the ``mcp`` SDK) against the studio on loopback and the stand-in."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import webuiapi
from PIL import Image

from harness import closed_port, wait_for
from sd35.api import MODEL_ALIASES, MODEL_ID
from sd35.metadata import read_metadata
from sd35.server import RunningStudio
from sd35.standin import StandinServer
from tests.studio_support import launch_studio

KEY = "sk-local-test-7d1f0c"
ALICE = ("alice", "wonderland-42")


def openai_client(running: RunningStudio, key: str = "unused", **kwargs) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{running.url}v1", api_key=key, max_retries=0, timeout=60, **kwargs
    )


def a1111_client(running: RunningStudio, **kwargs) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(baseurl=f"{running.url}sdapi/v1", steps=6, **kwargs)


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture(scope="module")
def shared_api_app(launch_module_app) -> RunningStudio:
    """One studio for the module: APIs and MCP on, no credentials (loopback)."""
    return launch_module_app(api=True, mcp=True)


@pytest.fixture
def api_app(shared_api_app: RunningStudio, preview_space: StandinServer) -> RunningStudio:
    """The module's studio, with the stand-in's behaviour reset for this test."""
    return shared_api_app


@pytest.fixture(scope="module")
def keyed_app(launch_module_app) -> RunningStudio:
    """The module's studio with an API key and a Basic user."""
    return launch_module_app(api=True, mcp=True, api_key=KEY, api_auth=[ALICE])


def run_in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    """Start ``target`` in a thread; the dict gets its ``result`` or ``error`` and ``seconds``."""
    outcome: dict = {}

    def body() -> None:
        began = time.monotonic()
        try:
            outcome["result"] = target(*args, **kwargs)
        except Exception as error:
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


# --- OpenAI ------------------------------------------------------------------------------------


def test_openai_b64_json_non_square_with_metadata_in_gallery(api_app: RunningStudio) -> None:
    before = api_app.studio.store.count()
    response = openai_client(api_app).images.generate(
        model="sd-3.5",
        prompt="a lighthouse at dusk",
        size="768x512",
        response_format="b64_json",
        extra_body={
            "negative_prompt": "fog",
            "seed": 1234,
            "guidance_scale": 3.5,
            "num_inference_steps": 6,
        },
    )
    assert response.created > 0 and len(response.data) == 1
    item = response.data[0]
    assert item.revised_prompt == "a lighthouse at dusk"
    data = base64.b64decode(item.b64_json)
    assert png(data).size == (768, 512) and png(data).format == "PNG"
    meta = read_metadata(data)
    assert meta is not None
    assert (meta.prompt, meta.negative_prompt, meta.seed) == ("a lighthouse at dusk", "fog", 1234)
    assert (meta.width, meta.height, meta.num_inference_steps) == (768, 512, 6)
    assert meta.guidance_scale == 3.5 and meta.model == MODEL_ID
    # The very PNG kept in the gallery, owned by nobody (open loopback server: the page shows it).
    page = api_app.studio.store.list(search="a lighthouse at dusk")
    assert api_app.studio.store.count() == before + 1
    stored = page.items[0]
    assert stored.user is None and stored.path.read_bytes() == data


def test_openai_url_points_at_our_copy_and_n_images(api_app: RunningStudio) -> None:
    response = openai_client(api_app).images.generate(
        model=MODEL_ID,
        prompt="two owls",
        n=2,
        size="auto",
        response_format="url",
        extra_body={"aspect_ratio": "16:9", "seed": 7, "num_inference_steps": 4},
    )
    assert len(response.data) == 2
    seeds = []
    for item in response.data:
        assert item.url.startswith(api_app.url) and item.url.endswith(".png")
        fetched = httpx.get(item.url, timeout=10)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        image = png(fetched.content)
        meta = read_metadata(fetched.content)
        assert meta is not None and meta.prompt == "two owls"
        assert image.size == (meta.width, meta.height) and image.width > image.height
        seeds.append(meta.seed)
    assert seeds == [7, 8]  # a fixed seed counts up through the batch, like the page


def test_openai_models(api_app: RunningStudio) -> None:
    client = openai_client(api_app)
    ids = [model.id for model in client.models.list()]
    assert ids[0] == MODEL_ID and set(MODEL_ALIASES) <= set(ids)
    assert client.models.retrieve("sd-3.5-large").owned_by == "stabilityai"
    # Mounted ahead of Gradio's own routes, so no catch-all of Gradio's can shadow them.
    assert api_app.page.app.router.routes[0].path == "/v1/images/generations"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"size": "32x32"}, ["64 to 4096", "512 to 1024 in steps of 32"]),
        ({"size": "8192x1024"}, ["64 to 4096"]),
        ({"size": "big"}, ["1024x768", "64 to 4096"]),
        ({"model": "midjourney"}, ["midjourney", MODEL_ID, "sd-3.5", "dall-e-3"]),
        ({"n": 11}, ["1 to 10"]),
        ({"prompt": "  "}, ["prompt"]),
        ({"extra_body": {"guidance_scale": -1}}, ["guidance_scale", "0 to 7.5"]),
        ({"extra_body": {"num_inference_steps": "many"}}, ["num_inference_steps", "1 to 50"]),
        ({"response_format": "jpeg"}, ["response_format"]),
    ],
)
def test_openai_bad_input_is_400(api_app: RunningStudio, kwargs: dict, words: list) -> None:
    started = api_app.studio.store.count()
    arguments = {"prompt": "a cat", "model": MODEL_ID, **kwargs}
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(api_app).images.generate(**arguments)
    error = raised.value
    assert error.status_code == 400 and error.body["type"] == "invalid_request_error"
    for word in words:
        assert word in error.body["message"]
    assert api_app.studio.store.count() == started  # nothing was sent or saved


def test_openai_quota_is_429_with_the_spaces_words(
    api_app: RunningStudio, preview_space: StandinServer
) -> None:
    preview_space.config.fault_once = "quota"
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client(api_app).images.generate(prompt="a cat", size="512x512")
    message = raised.value.body["message"]
    assert "You have exceeded your GPU quota (60s requested vs. 56s left)" in message
    assert "<a" not in message and raised.value.body["code"] == "insufficient_quota"
    assert raised.value.response.headers["x-should-retry"] == "false"


def test_unreachable_space_is_502(tmp_path: Path) -> None:
    running = launch_studio(f"http://127.0.0.1:{closed_port()}/", tmp_path / "out", api=True)
    try:
        with pytest.raises(openai.InternalServerError) as raised:
            openai_client(running).images.generate(prompt="a cat")
        assert raised.value.status_code == 502
        assert raised.value.body["code"] == "space_unreachable"
        assert "Could not reach the Space" in raised.value.body["message"]
        with pytest.raises(RuntimeError) as a1111:
            a1111_client(running).txt2img(prompt="a cat")
        assert a1111.value.args[0] == 502 and "Could not reach" in a1111.value.args[1]
    finally:
        running.close()


def test_timeout_is_504(preview_space: StandinServer, tmp_path: Path) -> None:
    preview_space.config.seconds_per_step = 0.1
    running = launch_studio(preview_space.url, tmp_path / "out", api=True, timeout=0.5)
    try:
        began = time.monotonic()
        with pytest.raises(openai.InternalServerError) as raised:
            openai_client(running).images.generate(
                prompt="slow", extra_body={"num_inference_steps": 30}
            )
        assert raised.value.status_code == 504 and raised.value.body["code"] == "timeout"
        assert time.monotonic() - began < 5.0  # 0.5 s, plus connecting on a busy machine
    finally:
        running.close()


def test_more_generations_than_the_bound_get_503_at_once(
    preview_space: StandinServer, tmp_path: Path
) -> None:
    preview_space.config.seconds_per_step = 0.1
    running = launch_studio(preview_space.url, tmp_path / "out", api=True, concurrency=1)
    try:
        client = openai_client(running)
        slow = {"prompt": "holding the slot", "extra_body": {"num_inference_steps": 15}}
        started = preview_space.config.jobs_started
        thread, outcome = run_in_thread(client.images.generate, **slow)
        wait_for(lambda: preview_space.config.jobs_started > started)
        began = time.monotonic()
        with pytest.raises(openai.InternalServerError) as raised:
            client.images.generate(prompt="one too many")
        assert time.monotonic() - began < 1.0  # answered, not queued behind the first
        assert raised.value.status_code == 503 and raised.value.body["code"] == "queue_full"
        with pytest.raises(RuntimeError) as a1111:
            a1111_client(running).txt2img(prompt="one too many")
        assert a1111.value.args[0] == 503
        thread.join(30)
        assert "result" in outcome, outcome.get("error")
        client.images.generate(prompt="after", extra_body={"num_inference_steps": 2})
    finally:
        running.close()


# --- AUTOMATIC1111 -----------------------------------------------------------------------------


def test_webuiapi_connects_and_reads_model_and_options(api_app: RunningStudio) -> None:
    api = a1111_client(api_app)  # its constructor already asks /scripts
    assert api.util_get_model_names() == [MODEL_ID]
    assert api.util_get_current_model() == MODEL_ID
    assert api.util_get_sampler_names() and api.util_get_scheduler_names()
    api.util_set_model("sd-3.5")  # POST /options, as Open WebUI does when saving settings
    for call in (api.get_upscalers, api.get_loras, api.get_embeddings, api.get_prompt_styles):
        call()
    idle = api.get_progress()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
    # Open WebUI sends an empty Authorization header when none is configured.
    options = httpx.get(f"{api_app.url}sdapi/v1/options", headers={"authorization": ""})
    assert options.json()["sd_model_checkpoint"] == MODEL_ID


def test_webuiapi_txt2img_fixed_seed(api_app: RunningStudio) -> None:
    result = a1111_client(api_app).txt2img(
        prompt="a red bicycle",
        negative_prompt="blurry",
        seed=4242,
        width=640,
        height=512,
        cfg_scale=5,
        steps=6,
        sampler_name="DPM++ 2M Karras",  # meaningless here: accepted, ignored
        enable_hr=True,
        batch_size=2,
    )
    assert len(result.images) == 2
    assert result.info["seed"] == 4242 and result.info["all_seeds"] == [4242, 4243]
    assert result.image.size == (640, 512)
    infotext = result.info["infotexts"][0]
    assert "Seed: 4242" in infotext and "Size: 640x512" in infotext
    assert result.parameters["prompt"] == "a red bicycle" and result.parameters["seed"] == 4242
    meta = read_metadata(result.image)  # the stored PNG's bytes, metadata included
    assert meta is not None and (meta.seed, meta.negative_prompt) == (4242, "blurry")
    assert meta.guidance_scale == 5 and meta.num_inference_steps == 6


def test_webuiapi_bad_size_is_400(api_app: RunningStudio) -> None:
    with pytest.raises(RuntimeError) as raised:
        a1111_client(api_app).txt2img(prompt="a cat", width=5000, height=512)
    status, text = raised.value.args
    assert status == 400 and "64 to 4096" in text and "512 to 1024 in steps of 32" in text


def test_progress_mid_job_shows_fraction_and_preview(
    api_app: RunningStudio, preview_space: StandinServer
) -> None:
    preview_space.config.seconds_per_step = 0.1
    api = a1111_client(api_app)
    thread, outcome = run_in_thread(api.txt2img, prompt="a slow sunrise", steps=20, seed=1)

    def running_with_preview():
        progress = api.get_progress()
        if 0 < progress["progress"] < 1 and progress["current_image"]:
            return progress
        return None

    progress = wait_for(running_with_preview, timeout=15)
    assert progress["state"]["job_count"] == 1 and progress["state"]["sampling_steps"] == 20
    assert 0 < progress["state"]["sampling_step"] < 20 and progress["eta_relative"] >= 0
    preview = png(base64.b64decode(progress["current_image"]))
    assert preview.format == "PNG" and preview.size == (512, 512)  # webuiapi default
    thread.join(30)
    assert outcome["result"].info["seed"] == 1
    assert api.get_progress()["state"]["job_count"] == 0


def test_interrupt_ends_the_job_and_cancels_the_remote_one(
    api_app: RunningStudio, preview_space: StandinServer
) -> None:
    config = preview_space.config
    config.seconds_per_step = 0.1
    api = a1111_client(api_app)
    finished, cancelled = config.jobs_finished, config.jobs_cancelled
    thread, outcome = run_in_thread(api.txt2img, prompt="never finished", steps=40, n_iter=2)
    wait_for(lambda: api.get_progress()["current_image"], timeout=15)  # a preview frame exists
    interrupted_at = time.monotonic()
    api.interrupt()
    thread.join(10)
    assert not thread.is_alive() and "result" in outcome, outcome.get("error")
    assert outcome["seconds"] < 4.0  # the job alone would take 2 × 4 s
    assert time.monotonic() - interrupted_at < 3.0
    # What existed is returned: the running image's last preview frame, saved and marked.
    result = outcome["result"]
    assert result.info["interrupted"] is True and result.info["interrupted_images"] == [True]
    assert len(result.images) == 1 and result.image.size == (512, 512)
    meta = read_metadata(result.image)
    assert meta is not None and meta.extra["interrupted"] is True
    assert meta.prompt == "never finished"
    # Wait out what the remote job would have taken: it was cancelled, not finished.
    time.sleep(max(0.0, 4.5 - (time.monotonic() - interrupted_at)))
    assert config.jobs_finished == finished
    assert config.jobs_cancelled == cancelled + 1


# --- credentials -------------------------------------------------------------------------------


def test_key_required_when_configured(
    keyed_app: RunningStudio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    missing = {"Authorization": openai.omit}  # the client sends no key at all
    for key, headers in (("sk-wrong", None), ("unused", missing)):
        with pytest.raises(openai.AuthenticationError) as raised:
            openai_client(keyed_app, key=key).images.generate(prompt="a cat", extra_headers=headers)
        assert raised.value.status_code == 401 and KEY not in raised.value.response.text
        assert raised.value.body["code"] == "invalid_api_key"
    assert "required" in raised.value.body["message"]  # the missing key is named as such
    with pytest.raises(openai.AuthenticationError):
        openai_client(keyed_app, key="sk-wrong").models.list()
    denied = httpx.get(f"{keyed_app.url}sdapi/v1/options")
    assert denied.status_code == 401 and "www-authenticate" in denied.headers
    with pytest.raises(RuntimeError) as wrong:
        a1111_client(keyed_app, username="alice", password="guess").txt2img(prompt="a cat")
    assert wrong.value.args[0] == 401 and ALICE[1] not in wrong.value.args[1]
    assert keyed_app.studio.store.count() == 0
    assert KEY not in caplog.text and ALICE[1] not in caplog.text


def test_key_and_basic_auth_accepted_and_own_their_images(keyed_app: RunningStudio) -> None:
    response = openai_client(keyed_app, key=KEY).images.generate(
        prompt="made with the key", extra_body={"num_inference_steps": 2}
    )
    url_less = response.data[0].b64_json
    assert url_less and KEY not in str(response.model_dump())
    result = a1111_client(keyed_app, username=ALICE[0], password=ALICE[1]).txt2img(
        prompt="made by alice", steps=2
    )
    assert len(result.images) == 1
    store = keyed_app.studio.store
    assert [image.meta.prompt for image in store.list(user="api").items] == ["made with the key"]
    assert [image.meta.prompt for image in store.list(user="alice").items] == ["made by alice"]
    # A URL answer works like OpenAI's: no Authorization needed (a tool's server fetches it),
    # the unguessable token names that one image, and the image id alone opens nothing.
    made = openai_client(keyed_app, key=KEY).images.generate(
        prompt="by url", response_format="url", extra_body={"num_inference_steps": 2}
    )
    url = made.data[0].url
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and read_metadata(fetched.content).prompt == "by url"
    image_id = store.list(user="api", search="by url").items[0].id
    assert image_id not in url
    base = url.rsplit("/", 1)[0]
    for guess in (f"{image_id}.png", "x" * 43 + ".png"):
        missing = httpx.get(f"{base}/{guess}")
        assert missing.status_code == 404 and "expired" in missing.json()["error"]["message"]


# --- MCP ---------------------------------------------------------------------------------------


async def _mcp(url: str, headers: dict[str, str] | None = None, call: dict | None = None):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with (
        streamablehttp_client(f"{url}gradio_api/mcp/", headers=headers) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        result = await session.call_tool("generate_image", call) if call else None
        return tools.tools, result


def test_mcp_lists_only_generate_image_and_calls_it(api_app: RunningStudio) -> None:
    call = {"prompt": "a paper boat", "aspect_ratio": "16:9", "seed": 99}
    tools, result = asyncio.run(_mcp(api_app.url, call=call))
    assert [tool.name for tool in tools] == ["generate_image"]
    schema = tools[0].inputSchema["properties"]
    assert set(schema) == {"prompt", "negative_prompt", "aspect_ratio", "seed"}
    assert "16:9" in schema["aspect_ratio"]["enum"] and "Stable Diffusion" in tools[0].description
    assert not result.isError
    image = next(part for part in result.content if part.type == "image")
    assert png(base64.b64decode(image.data)).size == (1024, 576)
    texts = [part.text for part in result.content if part.type == "text"]
    saved = Path(next(text for text in texts if text.endswith(".png") and "URL" not in text))
    assert saved.is_file() and saved.parent.parent == api_app.studio.store.root
    meta = read_metadata(saved)
    assert meta is not None and (meta.prompt, meta.seed) == ("a paper boat", 99)
    assert "99" in texts


def test_mcp_checks_the_api_credentials(keyed_app: RunningStudio) -> None:
    call = {"prompt": "a kite", "seed": 3}
    _, refused = asyncio.run(_mcp(keyed_app.url, call=call))
    assert refused.isError and KEY not in str(refused.content)
    _, accepted = asyncio.run(
        _mcp(keyed_app.url, headers={"Authorization": f"Bearer {KEY}"}, call=call)
    )
    assert not accepted.isError
