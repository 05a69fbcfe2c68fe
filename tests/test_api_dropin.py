"""The studio as a drop-in image backend: the requests popular tools really send, replayed
verbatim (field for field, read from each tool's public source; file and commit named at each
test) against ``app.py --api`` on loopback, plus the real ``openai`` and ``webuiapi`` clients
with their defaults. Each gets a valid PNG and the fields the tool parses.

Only the request shapes are copied here, never the tools' code. A value the tool's user sets
(a prompt, a URL, a password) is filled in; every field the tool always sends is kept.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from typing import Any

import httpx
import openai
import pytest
import webuiapi
from PIL import Image

from harness import wait_for
from sd35.api import MODEL_ID
from sd35.metadata import read_metadata
from sd35.server import RunningStudio
from sd35.standin import StandinServer

KEY = "sk-dropin-4c1e"
ST_USER = ("tavern", "st-pass-91")

# SillyTavern/SillyTavern @ ba6f7b7a98cf7a5eaf4f0e81da9779a9a668ced4,
# public/scripts/extensions/stable-diffusion/index.js: ``resolutionOptions`` (all 19 presets),
# each with the size made: the nearest on the Space's grid (512-1024, step 32) with its ratio.
SILLYTAVERN_RESOLUTIONS = [
    ((512, 512), (512, 512)), ((600, 600), (608, 608)), ((512, 768), (512, 768)),
    ((768, 512), (768, 512)), ((960, 540), (960, 544)), ((540, 960), (544, 960)),
    ((1920, 1088), (1024, 576)), ((1088, 1920), (576, 1024)), ((1280, 720), (1024, 576)),
    ((720, 1280), (576, 1024)), ((1024, 1024), (1024, 1024)), ((1152, 896), (1024, 800)),
    ((896, 1152), (800, 1024)), ((1216, 832), (1024, 704)), ((832, 1216), (704, 1024)),
    ((1344, 768), (1024, 576)), ((768, 1344), (576, 1024)),
    ((1536, 640), (1024, 512)), ((640, 1536), (512, 1024)),  # 2.4:1; the Space's widest is 2:1
]  # fmt: skip


def sillytavern_txt2img(url: str, auth: str, width: int, height: int, **settings) -> dict:
    """The body SillyTavern's server forwards to ``/sdapi/v1/txt2img`` for the "auto" source.

    Client (SillyTavern/SillyTavern @ ba6f7b7a98cf7a5eaf4f0e81da9779a9a668ced4,
    public/scripts/extensions/stable-diffusion/index.js, ``generateAutoImage`` with
    ``getSdRequestBody()`` = ``{url: auto_url, auth: auto_auth}`` and the ``defaultSettings``
    values); its server (src/endpoints/stable-diffusion.js, ``/generate``) posts
    ``JSON.stringify(request.body)`` unchanged, ``Authorization: Basic base64(auth)``.
    ``seed`` and ``override_settings.sd_vae`` are ``undefined`` by default, so JSON leaves them
    out.
    """
    body = {
        "url": url,
        "auth": auth,
        "prompt": "a knight in a forest, detailed",
        "negative_prompt": "lowres, bad anatomy",
        "sampler_name": "DDIM",
        "scheduler": "normal",
        "steps": 20,
        "cfg_scale": 7,
        "width": width,
        "height": height,
        "restore_faces": False,
        "enable_hr": False,
        "hr_upscaler": "Latent",
        "hr_scale": 2.0,
        "denoising_strength": 0.7,
        "hr_second_pass_steps": 0,
        "override_settings": {"CLIP_stop_at_last_layers": 1},
        "override_settings_restore_afterwards": True,
        "clip_skip": 1,
        "save_images": True,
        "send_images": True,
        "do_not_save_grid": False,
        "do_not_save_samples": False,
    }
    body.update(settings)
    return body


def basic(auth: str) -> dict[str, str]:
    """SillyTavern's ``getBasicAuthHeader(auth)`` (src/util.js): ``Basic base64(auth)``, sent
    even when ``auth`` is empty; fetch trims the value (header normalization), so an empty
    ``auth`` goes out as ``Basic``."""
    return {"Authorization": ("Basic " + base64.b64encode(auth.encode()).decode()).strip()}


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image


def b64_png(text: str) -> Image.Image:
    return png(base64.b64decode(text))


@pytest.fixture(scope="module")
def shared_api_app(launch_module_app) -> RunningStudio:
    """The studio with its APIs on loopback, open (as on 127.0.0.1 without credentials)."""
    return launch_module_app(api=True)


@pytest.fixture
def api_app(shared_api_app: RunningStudio, preview_space: StandinServer) -> RunningStudio:
    return shared_api_app


@pytest.fixture(scope="module")
def guarded_app(launch_module_app) -> RunningStudio:
    """The studio with a Bearer key and a Basic user, as when other machines reach it."""
    return launch_module_app(api=True, api_key=KEY, api_auth=[ST_USER])


def generations(app: RunningStudio, body: dict, headers: dict[str, str]) -> list[dict]:
    """POST ``body`` to the OpenAI images route as the tool sends it; the answer's ``data``."""
    response = httpx.post(f"{app.url}v1/images/generations", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def body() -> None:
        try:
            outcome["result"] = target(*args, **kwargs)
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


# --- SillyTavern, "auto" (AUTOMATIC1111) source ------------------------------------------------


def test_sillytavern_connect_routes(api_app: RunningStudio) -> None:
    """What SillyTavern's server asks when its user presses Connect and opens the settings
    (src/endpoints/stable-diffusion.js @ ba6f7b7a98cf7a5eaf4f0e81da9779a9a668ced4: /ping,
    /upscalers, /vaes, /samplers, /schedulers, /models, /get-model, /set-model), each checked
    the way that file reads it."""
    base, headers = api_app.url.rstrip("/"), basic("")

    def get(path: str) -> Any:
        response = httpx.get(f"{base}{path}", headers=headers, timeout=10)
        assert response.status_code == 200, (path, response.text)  # ``if (!result.ok) throw``
        return response.json()

    get("/sdapi/v1/options")  # /ping
    upscalers = [x["name"] for x in get("/sdapi/v1/upscalers")]
    latent = [x["name"] for x in get("/sdapi/v1/latent-upscale-modes")]
    assert isinstance(upscalers, list) and isinstance(latent, list)
    assert all(isinstance(x["model_name"], str) for x in get("/sdapi/v1/sd-vae"))
    assert [x["name"] for x in get("/sdapi/v1/samplers")]
    assert [x["name"] for x in get("/sdapi/v1/schedulers")]
    models = [{"value": x["title"], "text": x["title"]} for x in get("/sdapi/v1/sd-models")]
    assert models[0]["value"] == MODEL_ID
    assert get("/sdapi/v1/options")["sd_model_checkpoint"] == MODEL_ID  # /get-model
    # /set-model: POST the chosen title, then poll /progress until idle.
    response = httpx.post(
        f"{base}/sdapi/v1/options",
        content=json.dumps({"sd_model_checkpoint": models[0]["value"]}),
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )
    assert response.status_code == 200
    progress = get("/sdapi/v1/progress")
    assert progress["progress"] == 0.0 and progress["state"]["job_count"] == 0


@pytest.mark.parametrize(("asked", "made"), SILLYTAVERN_RESOLUTIONS)
def test_sillytavern_txt2img_each_resolution_preset(
    api_app: RunningStudio, asked: tuple[int, int], made: tuple[int, int]
) -> None:
    width, height = asked
    body = sillytavern_txt2img(api_app.url.rstrip("/"), "", width, height)
    response = httpx.post(
        f"{api_app.url}sdapi/v1/txt2img",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", **basic("")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    data = response.json()
    image = b64_png(data["images"][0])  # ``return { format: 'png', data: data.images[0] }``
    assert image.size == made
    info = json.loads(data["info"])
    assert (info["width"], info["height"]) == made
    changed = asked != made
    assert bool(info["adjustments"]) == changed
    if changed:
        assert f"{width}x{height} -> {made[0]}x{made[1]}" in info["adjustments"][0]
        meta = read_metadata(base64.b64decode(data["images"][0]))
        assert meta is not None and meta.extra["api_adjustments"] == info["adjustments"]


def test_sillytavern_sliders_above_the_spaces_maximum_are_clamped_and_reported(
    api_app: RunningStudio,
) -> None:
    # defaultSettings: scale_max 30, steps_max 150 (SillyTavern @ ba6f7b7a, index.js).
    body = sillytavern_txt2img(api_app.url, "", 512, 512, cfg_scale=30, steps=150)
    response = httpx.post(
        f"{api_app.url}sdapi/v1/txt2img", json=body, headers=basic(""), timeout=60
    )
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    assert (info["cfg_scale"], info["steps"]) == (7.5, 50)
    assert "cfg_scale 30 -> 7.5" in " ".join(info["adjustments"])
    assert "steps 150 -> 50" in info["extra_generation_params"]["Adjustments"]
    meta = read_metadata(base64.b64decode(response.json()["images"][0]))
    assert meta is not None and (meta.guidance_scale, meta.num_inference_steps) == (7.5, 50)


def test_sillytavern_auth_is_not_echoed(guarded_app: RunningStudio, preview_space) -> None:
    auth = f"{ST_USER[0]}:{ST_USER[1]}"
    body = sillytavern_txt2img(guarded_app.url, auth, 512, 512, steps=4)
    response = httpx.post(
        f"{guarded_app.url}sdapi/v1/txt2img", json=body, headers=basic(auth), timeout=60
    )
    assert response.status_code == 200, response.text
    assert "auth" not in response.json()["parameters"]
    assert ST_USER[1] not in response.text
    stored = base64.b64decode(response.json()["images"][0])
    assert ST_USER[1].encode() not in stored
    # Wrong credentials in the same shape: 401, not an image.
    wrong = httpx.post(
        f"{guarded_app.url}sdapi/v1/txt2img", json=body, headers=basic("tavern:nope"), timeout=60
    )
    assert wrong.status_code == 401


def test_sillytavern_interrupt_returns_the_last_preview(
    api_app: RunningStudio, preview_space: StandinServer
) -> None:
    """SillyTavern's server posts /sdapi/v1/interrupt (no body, Basic auth) when its user
    cancels; whatever the running txt2img had is returned and kept, marked interrupted."""
    preview_space.config.seconds_per_step = 0.1
    base = api_app.url
    body = sillytavern_txt2img(base, "", 768, 512, steps=40)
    thread, outcome = in_thread(
        httpx.post, f"{base}sdapi/v1/txt2img", json=body, headers=basic(""), timeout=60
    )
    wait_for(lambda: httpx.get(f"{base}sdapi/v1/progress").json()["current_image"])
    assert httpx.post(f"{base}sdapi/v1/interrupt", headers=basic("")).status_code == 200
    thread.join(15)
    response = outcome["result"]
    assert response.status_code == 200, response.text
    data = response.json()
    assert b64_png(data["images"][0]).size == (768, 512)
    info = json.loads(data["info"])
    assert info["interrupted"] is True and info["interrupted_images"] == [True]
    meta = read_metadata(base64.b64decode(data["images"][0]))
    assert meta is not None and meta.extra["interrupted"] is True
    stored = api_app.studio.store.list(search="a knight in a forest").items[0]
    assert stored.meta.extra.get("interrupted") is True


def test_interrupt_before_anything_exists_is_an_error_both_tools_handle(
    api_app: RunningStudio, preview_space: StandinServer
) -> None:
    """With nothing to return the answer is 409 in A1111's shape: SillyTavern's server treats
    any non-ok answer as a failed generation (``if (!result.ok) throw``), and ``webuiapi``
    raises its ``RuntimeError(status, text)`` instead of an IndexError in ``result.image``."""
    config = preview_space.config
    config.queue_hold = 5.0  # the Space holds the job before its first step
    api = webuiapi.WebUIApi(baseurl=f"{api_app.url}sdapi/v1")
    started = config.jobs_started
    thread, outcome = in_thread(api.txt2img, prompt="never started")
    wait_for(lambda: config.jobs_started > started)
    api.interrupt()
    thread.join(10)
    assert not thread.is_alive()
    error = outcome["error"]
    assert isinstance(error, RuntimeError)
    status, text = error.args
    assert status == 409 and "Interrupted" in json.loads(text)["detail"]


# --- LibreChat -------------------------------------------------------------------------------


def test_librechat_dalle3_tool(api_app: RunningStudio) -> None:
    """danny-avila/LibreChat @ 37d31ec25f2aac6a4e9a4eb3fc05e3c824250861,
    api/app/clients/tools/structured/DALLE3.js ``_call``: ``openai.images.generate({model:
    'dall-e-3', quality, style, size, prompt, n: 1})`` with the tool's defaults, then
    ``resp.data[0].url`` (no response_format: OpenAI's default for DALL-E is ``url``), its file
    extension from the URL's path, and a download by LibreChat's server without credentials."""
    made_for = {"1024x1024": (1024, 1024), "1792x1024": (1024, 576), "1024x1792": (576, 1024)}
    for size, made in made_for.items():  # the tool's zod enum of sizes
        response = httpx.post(
            f"{api_app.url}v1/images/generations",
            json={
                "model": "dall-e-3",
                "quality": "standard",
                "style": "vivid",
                "size": size,
                "prompt": "A photo of a red fox in the snow",
                "n": 1,
            },
            headers={"Authorization": "Bearer sk-anything"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        url = response.json()["data"][0]["url"]
        assert httpx.URL(url).path.endswith(".png")
        fetched = httpx.get(url, timeout=10)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert png(fetched.content).size == made


def test_librechat_openai_image_tool(api_app: RunningStudio) -> None:
    """danny-avila/LibreChat @ 8731432f64aaaf70633b0a60922ee8182baa630d,
    api/app/clients/tools/structured/OpenAIImageTools.js, image_gen_oai with its defaults:
    model ``gpt-image-1`` (IMAGE_GEN_OAI_MODEL unset), background/quality/size ``auto``,
    output_format ``png`` (output_compression undefined, so left out); reads
    ``resp.data[0].b64_json``."""
    body = {"model": "gpt-image-1", "prompt": "Watercolor painting of a lighthouse at dawn", "n": 1}
    body |= {"background": "auto", "output_format": "png", "quality": "auto", "size": "auto"}
    data = generations(api_app, body, {"Authorization": "Bearer sk-anything"})
    assert b64_png(data[0]["b64_json"]).size == (1024, 1024)


# --- n8n ---------------------------------------------------------------------------------------

# n8n-io/n8n @ c53b4ff4888d6e97411a2bc320e04973456df1f6,
# packages/@n8n/nodes-langchain/nodes/vendors/OpenAi/actions/image/generate.operation.ts:
# body = {prompt, model, response_format (not for gpt-image-1), ...options}, with
# dalleQuality renamed to quality; ``data[i].b64_json`` decoded, or ``data`` returned as is for
# URLs.
N8N_BODIES = [
    # The node's defaults: model dall-e-3, no options.
    (
        {"prompt": "a cute cat", "model": "dall-e-3", "response_format": "b64_json"},
        1,
        "b64",
        (1024, 1024),
    ),
    (
        {
            "prompt": "a cute cat",
            "model": "dall-e-3",
            "response_format": "b64_json",
            "quality": "hd",
            "size": "1792x1024",
            "style": "natural",
        },
        1,
        "b64",
        (1024, 576),
    ),
    (
        {
            "prompt": "a cute cat",
            "model": "dall-e-2",
            "response_format": "url",
            "n": 10,
            "size": "256x256",
        },
        10,
        "url",
        (512, 512),
    ),
    (
        {"prompt": "a cute cat", "model": "gpt-image-1", "quality": "medium", "size": "1536x1024"},
        1,
        "b64",
        (1024, 672),
    ),
]


@pytest.mark.parametrize(("body", "count", "kind", "made"), N8N_BODIES)
def test_n8n_openai_image_node(
    api_app: RunningStudio, body: dict, count: int, kind: str, made: tuple[int, int]
) -> None:
    response = httpx.post(
        f"{api_app.url}v1/images/generations",
        json=body,
        headers={"Authorization": "Bearer sk-anything"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == count
    for entry in data:
        if kind == "b64":
            image = png(base64.b64decode(entry["b64_json"]))
        else:
            image = png(httpx.get(entry["url"], timeout=10).content)
        assert image.size == made


# --- Open WebUI --------------------------------------------------------------------------------


def test_open_webui_openai_engine(api_app: RunningStudio) -> None:
    """open-webui/open-webui @ a8289745da748f8e83447771f9c92df342dbd257,
    backend/open_webui/routers/images.py ``image_generations``, engine "openai": model
    ``dall-e-2`` when none is set, ``n``, the configured size, ``response_format: b64_json``;
    reads ``res["data"][i]["b64_json"]``."""
    body = {"model": "dall-e-2", "prompt": "a mountain lake", "n": 1, "size": "512x512"}
    body["response_format"] = "b64_json"
    headers = {"Authorization": "Bearer sk-anything", "Content-Type": "application/json"}
    for image in generations(api_app, body, headers):
        assert b64_png(image["b64_json"]).size == (512, 512)


def test_open_webui_automatic1111_engine(api_app: RunningStudio) -> None:
    """Same file, engine "automatic1111": ``verify_url`` and ``set_image_model`` GET
    /sdapi/v1/options and POST it back whole with ``sd_model_checkpoint`` set; ``get_models``
    maps /sdapi/v1/sd-models to ``{id: title, name: model_name}``; ``image_generations`` posts
    ``{prompt, batch_size: n, width, height, steps}`` and reads ``res["images"]`` and
    ``res["info"]``. No API auth configured: an empty ``authorization`` header."""
    base, headers = api_app.url.rstrip("/"), {"authorization": ""}
    options = httpx.get(f"{base}/sdapi/v1/options", headers=headers)
    options.raise_for_status()
    models = [
        {"id": m["title"], "name": m["model_name"]}
        for m in httpx.get(f"{base}/sdapi/v1/sd-models", headers=headers).json()
    ]
    chosen = {**options.json(), "sd_model_checkpoint": models[0]["id"]}
    assert httpx.post(f"{base}/sdapi/v1/options", json=chosen, headers=headers).status_code == 200
    response = httpx.post(
        f"{base}/sdapi/v1/txt2img",
        json={"prompt": "a mountain lake", "batch_size": 2, "width": 512, "height": 512,
              "steps": 50},
        headers=headers,
        timeout=60,
    )  # fmt: skip
    res = response.json()
    assert response.status_code == 200, res
    assert [b64_png(image).size for image in res["images"]] == [(512, 512)] * 2
    assert json.loads(res["info"])["sd_model_name"] == MODEL_ID


# --- the real clients, with their defaults -------------------------------------------------


def test_openai_client_defaults_with_dalle3(api_app: RunningStudio) -> None:
    client = openai.OpenAI(base_url=f"{api_app.url}v1", api_key="sk-anything", max_retries=0)
    result = client.images.generate(model="dall-e-3", prompt="an owl at night")
    url = result.data[0].url  # OpenAI's default format for DALL-E
    assert url and result.data[0].b64_json is None
    assert png(httpx.get(url, timeout=10).content).size == (1024, 1024)
    gpt = client.images.generate(model="gpt-image-1", prompt="an owl", size="1536x1024")
    assert b64_png(gpt.data[0].b64_json).size == (1024, 672)
    ours = client.images.generate(model="sd-3.5", prompt="an owl")
    assert ours.data[0].b64_json and ours.data[0].url is None  # ours default to b64_json


def test_webuiapi_defaults(api_app: RunningStudio) -> None:
    host, port = httpx.URL(api_app.url).host, httpx.URL(api_app.url).port
    api = webuiapi.WebUIApi(host=host, port=port)  # steps 20, "Euler a"
    result = api.txt2img(prompt="a small red boat")  # 512x512, cfg 7, seed -1
    assert result.image.size == (512, 512)
    assert result.info["sd_model_name"] == MODEL_ID and len(result.info["all_seeds"]) == 1
    assert api.util_get_current_model() == MODEL_ID


def test_webuiapi_sixteen_images_run_one_after_another(api_app: RunningStudio) -> None:
    api = webuiapi.WebUIApi(baseurl=f"{api_app.url}sdapi/v1", steps=2)
    result = api.txt2img(prompt="sixteen dots", seed=100, batch_size=4, n_iter=4)
    assert len(result.images) == 16
    assert result.info["all_seeds"] == list(range(100, 116))
    with pytest.raises(RuntimeError) as raised:
        api.txt2img(prompt="too many", batch_size=17)
    assert raised.value.args[0] == 400 and "16" in raised.value.args[1]


def test_model_aliases_and_the_seeds_dashed_id(api_app: RunningStudio, monkeypatch) -> None:
    client = openai.OpenAI(base_url=f"{api_app.url}v1", api_key="x", max_retries=0)
    ids = [model.id for model in client.models.list()]
    assert "stabilityai-stable-diffusion-3-5-large" in ids and MODEL_ID in ids
    for name in ("stabilityai-stable-diffusion-3-5-large", "gpt-image-1-mini", "DALL-E-2"):
        made = client.images.generate(
            model=name, prompt="a pear", response_format="b64_json",
            extra_body={"num_inference_steps": 2},
        )  # fmt: skip
        assert b64_png(made.data[0].b64_json).size == (1024, 1024)
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="my-flux", prompt="a pear")
    monkeypatch.setenv("SD35_MODEL_ALIASES", "my-flux, other")
    made = client.images.generate(
        model="my-flux", prompt="a pear", extra_body={"num_inference_steps": 2}
    )
    assert made.data[0].b64_json
    options = httpx.post(
        f"{api_app.url}sdapi/v1/options",
        json={"sd_model_checkpoint": "stabilityai-stable-diffusion-3-5-large"},
    )
    assert options.status_code == 200


# --- unsupported routes, quota, bad input --------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["img2img", "extra-single-image", "extra-batch-images", "interrogate", "controlnet/detect"],
)
def test_image_routes_answer_501_in_a1111_shape(api_app: RunningStudio, path: str) -> None:
    response = httpx.post(
        f"{api_app.url}sdapi/v1/{path}", json={"init_images": ["aGVsbG8="], "prompt": "x"}
    )
    assert response.status_code == 501
    body = response.json()
    assert set(body) == {"error", "detail", "body", "errors"}
    assert "only does text-to-image" in body["detail"]


def test_openai_edits_answer_501_in_openai_shape(api_app: RunningStudio) -> None:
    client = openai.OpenAI(base_url=f"{api_app.url}v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.images.edit(image=("a.png", b"\x89PNG"), prompt="add a hat", model="dall-e-2")
    assert raised.value.status_code == 501
    assert "only does text-to-image" in raised.value.body["message"]


def test_quota_429_carries_retry_after_on_both_apis(
    guarded_app: RunningStudio, preview_space: StandinServer
) -> None:
    preview_space.config.fault_once = "quota_wait"  # "retry in 0:09:48"
    response = httpx.post(
        f"{guarded_app.url}v1/images/generations",
        json={"prompt": "x", "model": "dall-e-3"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert response.status_code == 429
    assert 570 <= int(response.headers["retry-after"]) <= 588
    preview_space.config.fault_once = "quota_wait"
    response = httpx.post(
        f"{guarded_app.url}sdapi/v1/txt2img", json={"prompt": "x"}, auth=ST_USER, timeout=60
    )
    assert response.status_code == 429 and "GPU quota" in response.json()["detail"]
    assert 570 <= int(response.headers["retry-after"]) <= 588
    preview_space.config.fault_once = "quota"  # no wait named: no Retry-After
    response = httpx.post(
        f"{guarded_app.url}sdapi/v1/txt2img", json={"prompt": "x"}, auth=ST_USER, timeout=60
    )
    assert response.status_code == 429 and "retry-after" not in response.headers


A1111_BAD = [
    {"prompt": "x", "width": "wide"},
    {"prompt": "x", "width": 32, "height": 512},
    {"prompt": "x", "width": 5000},
    {"prompt": "x", "width": True},
    {"prompt": "x", "steps": -5},
    {"prompt": "x", "steps": 0},
    {"prompt": "x", "steps": 2.5},
    {"prompt": "x", "cfg_scale": -1},
    {"prompt": "x", "cfg_scale": "high"},
    {"prompt": "x", "batch_size": 0},
    {"prompt": "x", "batch_size": 4, "n_iter": 5},
    {"prompt": "x", "seed": "lucky"},
    {"prompt": 5},
    {"prompt": ""},
    {"prompt": "x", "negative_prompt": {"a": 1}},
]
OPENAI_BAD = [
    {"prompt": "x", "size": "0x0"},
    {"prompt": "x", "size": "99999x1"},
    {"prompt": "x", "size": 512},
    {"prompt": "x", "n": 0},
    {"prompt": "x", "n": 1.5},
    {"prompt": "x", "n": 11},
    {"prompt": "x", "model": 5},
    {"prompt": "x", "model": ["dall-e-3"]},
    {"prompt": "x", "response_format": 5},
    {"prompt": "x", "guidance_scale": -0.5},
    {"prompt": "x", "num_inference_steps": "twenty"},
    {"prompt": None},
]


@pytest.mark.parametrize("body", A1111_BAD)
def test_a1111_bad_input_is_a_clear_400(api_app: RunningStudio, body: dict) -> None:
    response = httpx.post(f"{api_app.url}sdapi/v1/txt2img", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize("body", OPENAI_BAD)
def test_openai_bad_input_is_a_clear_400(api_app: RunningStudio, body: dict) -> None:
    response = httpx.post(f"{api_app.url}v1/images/generations", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]


#: Python's JSON reader takes NaN and turns 1e400 into infinity: both must still be 400.
MALFORMED = [
    b"not json",
    b"[]",
    b'{"prompt": "x", "cfg_scale": NaN, "guidance_scale": NaN}',
    b'{"prompt": "x", "seed": 1e400}',
    b'{"prompt": "x", "steps": 1e400, "num_inference_steps": 1e400}',
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_bodies_are_400_on_both_apis(api_app: RunningStudio, raw: bytes) -> None:
    for path in ("sdapi/v1/txt2img", "v1/images/generations"):
        response = httpx.post(
            f"{api_app.url}{path}", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (path, response.text)
