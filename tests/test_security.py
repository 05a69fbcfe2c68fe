"""Safe to share: logins guard every route, the token never leaks, only our images are served."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from sd35.metadata import read_texts
from sd35.server import ServerOptions, StartupError, check_safety, parse_args
from tests.studio_support import generate_args, launch_studio, open_page

TOKEN = "hf_SecretTokenValue0123456789abcdefXYZ"


def test_share_and_exposed_api_need_credentials() -> None:
    with pytest.raises(StartupError, match="--auth"):
        check_safety(ServerOptions(share=True))
    with pytest.raises(StartupError, match="--api-key"):
        check_safety(ServerOptions(host="0.0.0.0", api=True))
    # --auth covers the APIs too (the page's users log in to them with HTTP Basic).
    assert check_safety(ServerOptions(host="0.0.0.0", api=True, auth=[("a", "b")])) == []
    assert check_safety(ServerOptions(share=True, auth=[("a", "b")])) == []
    assert check_safety(ServerOptions(share=True, insecure_share=True)) == []
    assert "without --auth" in check_safety(ServerOptions(host="0.0.0.0"))[0]
    assert (
        check_safety(ServerOptions(host="0.0.0.0", api=True, api_key="k", auth=[("a", "b")])) == []
    )


def test_credentials_are_parsed_from_flags_and_files(tmp_path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("# comment\nalice:one\nbob:two:with:colons\n")
    options = parse_args(["--auth", "carol:three", "--auth-file", str(users)])
    assert options.auth == [("carol", "three"), ("alice", "one"), ("bob", "two:with:colons")]
    with pytest.raises(SystemExit):
        parse_args(["--auth", "nopassword"])


def test_login_guards_the_api_and_the_file_routes(preview_space, tmp_path) -> None:
    running = launch_studio(preview_space.url, tmp_path / "outputs", auth=[("alice", "pw-1")])
    try:
        client = Client(running.url, auth=("alice", "pw-1"), verbose=False, download_files=False)
        image = client.predict(*generate_args("a locked box"), api_name="/generate")[0]
        for path in ("config", "gradio_api/info", image["url"].split(running.url)[1]):
            assert httpx.get(running.url + path).status_code == 401, path
        with pytest.raises(ValueError):
            Client(running.url, verbose=False)  # no login: cannot even read the config
    finally:
        running.close()


@pytest.fixture
def served(preview_space, tmp_path):
    """A studio whose output folder is outside the working and temp folders (so it is an
    allowed path), with a secret file and an escaping symlink next to it."""
    home = Path(os.environ.get("SD35_TEST_OUTSIDE", Path.home() / ".cache" / "sd35-tests"))
    home.mkdir(parents=True, exist_ok=True)
    outside = Path(tempfile.mkdtemp(dir=home))
    outputs = outside / "outputs"
    outputs.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("not for the browser")
    (outputs / "escape.txt").symlink_to(secret)
    running = launch_studio(preview_space.url, outputs)
    try:
        yield running, outputs, secret
    finally:
        running.close()
        shutil.rmtree(outside, ignore_errors=True)


def test_path_tricks_are_refused(served) -> None:
    running, outputs, secret = served
    base = running.url + "gradio_api/file="
    attempts = [
        str(secret),
        "/etc/passwd",
        f"{outputs}/../{secret.name}",
        f"{outputs}/escape.txt",
        urllib.parse.quote(f"{outputs}/../{secret.name}", safe=""),
        f"{outputs}/%2e%2e/{secret.name}",
        str(Path(__file__).resolve()),  # a file in the working folder
    ]
    for attempt in attempts:
        response = httpx.get(base + attempt)
        assert response.status_code in (400, 403, 404), (attempt, response.status_code)
        assert "not for the browser" not in response.text


def test_the_token_never_leaves_the_server(browser, preview_space, tmp_path, capfd) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    running = launch_studio(preview_space.url, tmp_path / "outputs", token_file=str(token_file))
    bodies: list[str] = []
    try:
        # The page, its config and every response it loads while generating.
        page = open_page(browser, running.url)
        page.on("response", lambda r: bodies.append(_text(r)))
        page.reload()
        page.locator("#prompt textarea").fill("a token-free painting")
        page.locator("#generate-button").click()
        page.wait_for_function(
            "() => document.querySelector('#run-status')?.innerText.includes('Done')", timeout=30000
        )
        # The API, including an error and the info route.
        client = Client(running.url, verbose=False, download_files=str(tmp_path / "dl"))
        result = client.predict(*generate_args("another"), api_name="/generate")
        preview_space.config.fault_once = "quota"
        with pytest.raises(AppError) as caught:
            client.predict(*generate_args("over quota"), api_name="/generate")
        bodies += [str(result), caught.value.message, httpx.get(running.url + "config").text]
        bodies += [httpx.get(running.url + "gradio_api/info").text, page.content()]
        # Every stored image's metadata.
        for item in running.studio.store.list().items:
            bodies.append(repr(read_texts(item.path)))
        page.close()
    finally:
        running.close()
    # It was used: the Space saw it as a bearer header.
    assert any(
        h.get("x-hf-authorization") == f"Bearer {TOKEN}" for h in preview_space.config.seen_headers
    )
    logs = capfd.readouterr()
    for text in [*bodies, logs.out, logs.err, repr(running.studio.client)]:
        assert TOKEN not in text


def _text(response) -> str:
    try:
        return response.body().decode("utf-8", "replace")
    except Exception:  # redirects and aborted requests have no body
        return ""
