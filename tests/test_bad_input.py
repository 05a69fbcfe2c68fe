"""Every bad input an attacker tried, at every entry point: the APIs answer 400 naming the
field, the page's ``/generate`` a message naming it, the CLI and ``app.py`` exit 2 with one
line. Never a traceback, never 500, never a silent default."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from gradio_client import Client

from harness import free_port
from sd35 import cli, server
from sd35.backends.panel import ANY
from sd35.server import RunningStudio
from tests.studio_support import generate_args, open_page

HUGE = "1" + "0" * 400  # 10**400: a valid JSON number no float can hold
DEEP = "[" * 100_000 + "]" * 100_000

#: (name, OpenAI body, A1111 body, the field the answer must name or None for the body)
API_CASES = [
    ("huge count", f'{{"prompt": "x", "n": {HUGE}}}', f'{{"prompt": "x", "n_iter": {HUGE}}}', "n"),
    (
        "huge steps",
        f'{{"prompt": "x", "num_inference_steps": {HUGE}}}',
        f'{{"prompt": "x", "steps": {HUGE}}}',
        "steps",
    ),
    (
        "huge seed",
        f'{{"prompt": "x", "seed": -{HUGE}}}',
        f'{{"prompt": "x", "seed": {HUGE}}}',
        "seed",
    ),
    ("NaN count", '{"prompt": "x", "n": NaN}', '{"prompt": "x", "batch_size": NaN}', None),
    (
        "NaN steps",
        '{"prompt": "x", "num_inference_steps": NaN}',
        '{"prompt": "x", "steps": NaN}',
        "steps",
    ),
    (
        "infinite scale",
        '{"prompt": "x", "guidance_scale": Infinity}',
        '{"prompt": "x", "cfg_scale": -Infinity}',
        None,
    ),
    ("nested deep", DEEP, DEEP, None),
    ("nested deep in a field", f'{{"prompt": {DEEP}}}', f'{{"prompt": {DEEP}}}', None),
    (
        "4,301 digits",
        f'{{"prompt": "x", "n": 1{"0" * 4300}}}',
        f'{{"n_iter": 1{"0" * 4300}}}',
        None,
    ),
    ("lone surrogate", '{"prompt": "a \\ud800 b"}', '{"prompt": "a \\udfff b"}', "prompt"),
    ("prompt a list", '{"prompt": ["x"]}', '{"prompt": ["x"]}', "prompt"),
    (
        "steps as text",
        '{"prompt": "x", "num_inference_steps": "9"}',
        '{"prompt": "x", "steps": "9"}',
        "steps",
    ),
]


@pytest.fixture
def page_client_url(api_app) -> str:
    return api_app.url


@pytest.fixture(scope="module")
def api_app(launch_module_app) -> RunningStudio:
    return launch_module_app(api=True)


@pytest.mark.parametrize(
    ("name", "openai_body", "a1111_body", "field"), API_CASES, ids=[c[0] for c in API_CASES]
)
def test_apis_answer_400(api_app, preview_space, capfd, name, openai_body, a1111_body, field):
    started = preview_space.config.jobs_started
    json_type = {"content-type": "application/json"}
    for path, body in (("v1/images/generations", openai_body), ("sdapi/v1/txt2img", a1111_body)):
        response = httpx.post(api_app.url + path, content=body, headers=json_type, timeout=60)
        assert response.status_code == 400, (name, path, response.status_code, response.text)
        if field:
            assert field in response.text, (name, path, response.text)
    assert preview_space.config.jobs_started == started  # nothing reached the Space
    assert "Traceback" not in capfd.readouterr().err


#: (name, inputs of the page's /generate as a gradio_client caller sends them, field named)
def _page_inputs(**changes):
    # A raw HTTP caller sends every input, the backend choice last (gradio_client fills it).
    inputs = dict(zip(PAGE_NAMES, [*generate_args("a valid prompt"), ANY], strict=True))
    inputs.update(changes)
    return list(inputs.values())


PAGE_NAMES = (
    "prompt", "negative", "width", "height", "guidance", "steps", "seed", "random", "n", "backend"
)  # fmt: skip
PAGE_CASES = [
    ("prompt a list", {"prompt": ["x"]}, "prompt"),
    ("prompt with a lone surrogate", {"prompt": "a \ud800 b"}, "prompt"),
    ("NaN steps", {"steps": float("nan")}, "num_inference_steps"),
    ("huge steps", {"steps": 10**400}, "num_inference_steps"),
    ("steps as text", {"steps": "forty"}, "num_inference_steps"),
    ("guidance as text", {"guidance": "high"}, "guidance_scale"),
    ("width a dict", {"width": {"w": 1}}, "width"),
    ("seed infinite", {"seed": float("inf"), "random": False}, "seed"),
    ("batch as text", {"n": "many"}, "batch_count"),
    ("randomize as text", {"random": "yes"}, "randomize_seed"),
]


def call_generate(url: str, inputs: list) -> str:
    """Call the page's ``/generate`` over Gradio's HTTP API with raw JSON (NaN, lone surrogates
    and 400-digit numbers included, which ``gradio_client`` cannot send); the event stream."""
    body = json.dumps({"data": inputs})  # ASCII escapes and NaN, as a hand-made client sends
    headers = {"content-type": "application/json"}
    started = httpx.post(f"{url}gradio_api/call/generate", content=body, headers=headers)
    if started.status_code == 422:  # refused by the page's validator, before any job
        return "event: error\n" + started.text
    assert started.status_code == 200, started.text
    event_id = started.json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/generate/{event_id}", timeout=60).text


@pytest.mark.parametrize(("name", "changes", "field"), PAGE_CASES, ids=[c[0] for c in PAGE_CASES])
def test_page_generate_names_the_field(api_app, preview_space, capfd, name, changes, field):
    started = preview_space.config.jobs_started
    stream = call_generate(api_app.url, _page_inputs(**changes))
    assert "event: error" in stream and "null" not in stream.split("event: error")[1], stream
    assert field in stream, (name, stream)
    assert preview_space.config.jobs_started == started
    assert "Traceback" not in capfd.readouterr().err


CLI_CASES = [
    ("huge steps", ["--steps", HUGE]),
    ("text steps", ["--steps", "ten"]),
    ("NaN guidance", ["--guidance-scale", "nan"]),
    ("huge seed", ["--seed", f"-{HUGE}"]),
    ("steps out of range", ["--steps", "500"]),
    ("a prompt that is not text", ["--negative-prompt", "bad \udcff bytes"]),
    ("NaN timeout", ["--timeout", "nan"]),
    ("missing token file", ["--token-file", "/nonexistent/token"]),
]


@pytest.mark.parametrize(("name", "args"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_exits_2_with_one_line(preview_space, tmp_path, capsys, name, args) -> None:
    argv = ["generate", "a prompt", "--space", preview_space.url, "--out", str(tmp_path), *args]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (name, err)
    assert len(err) == 1 and err[0].startswith("error: "), (name, err)


def _app_cases(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return [
        ("missing auth file", ["--auth-file", str(tmp_path / "nope")], "--auth-file"),
        ("missing token file", ["--token-file", str(tmp_path / "nope")], "--token-file"),
        ("port out of range", ["--port", "99999"], "99999"),
        ("port as text", ["--port", "http"], "port"),
        ("output folder is a file", ["--output-dir", str(a_file)], "is a file"),
        ("credentials without a password", ["--auth", "alice"], "USER:PASS"),
        ("NaN timeout", ["--timeout", "nan"], "nan"),
    ]


def test_gradio_client_callers_get_the_message(page_client_url) -> None:
    client = Client(page_client_url, verbose=False, download_files=False)
    with pytest.raises(Exception) as caught:  # AppError naming the field
        client.predict(*_page_inputs(prompt=["x"]), api_name="/generate")
    assert "prompt must be text" in str(caught.value)


@pytest.mark.browser
def test_the_page_shows_the_message_beside_the_field(browser, api_app) -> None:
    page = open_page(browser, api_app.url)
    try:
        page.locator("#prompt textarea").fill("   ")
        page.locator("#generate-button").click()
        message = page.locator("#prompt-error").get_by_text("Please enter a prompt.")
        message.wait_for(timeout=15000)
    finally:
        page.close()


def test_app_options_exit_2_with_one_line(tmp_path, capsys) -> None:
    for name, args, words in _app_cases(tmp_path):
        try:
            port = [] if "--port" in args else ["--port", str(free_port())]
            code = server.main([*args, *port])
        except SystemExit as exit_:
            code = exit_.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (name, err)
        assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], (name, err)


def test_app_py_itself_fails_in_one_line(tmp_path) -> None:
    result = subprocess.run(
        ["python3", "app.py", "--auth-file", str(tmp_path / "missing.txt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
