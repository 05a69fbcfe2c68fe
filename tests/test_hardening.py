"""The five doors an attacker (or an unlucky user) found, each closed: the token stays home,
one user cannot fetch another's files, ``--auth`` covers the APIs, no web page can drive the
local API, and a full disk does not lose a finished image. All on loopback with the stand-in."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from harness import free_port, wait_for
from sd35 import cli
from sd35.tokens import HF_DOMAINS, token_for
from tests.studio_support import generate_args, launch_studio

TOKEN = "hf_SecretTokenValue0123456789abcdefXYZ"
ALICE = ("alice", "alice-pw-1")
BOB = ("bob", "bob-pw-2")
FOREIGN = "http://attacker.invalid"
HUB, SPACES = HF_DOMAINS[0], HF_DOMAINS[2]  # Hugging Face's own domains, by the rule's list


def cli_args(prompt: str, space: str, out: Path, *extra: object) -> list[str]:
    """``python -m sd35 generate`` arguments for a small, quick image."""
    small = ["--steps", "4", "--width", "512", "--height", "512"]
    return ["generate", prompt, "--space", space, "--out", str(out), *small, *map(str, extra)]


def login(url: str, user: tuple[str, str]) -> httpx.Client:
    """An HTTP client logged in to the page like a browser (the login cookie)."""
    client = httpx.Client(base_url=url, timeout=30)
    response = client.post("login", data={"username": user[0], "password": user[1]})
    assert response.status_code == 200, response.text
    return client


# --- 1. the token stays home -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "token", "explicit", "sent"),
    [
        (f"https://owner-space.{SPACES}/", TOKEN, False, True),
        (f"https://{HUB}/api/spaces/a/b", TOKEN, False, True),
        (f"http://owner-space.{SPACES}/", TOKEN, False, False),  # never in clear text
        (f"https://{SPACES}.attacker.invalid/", TOKEN, False, False),
        (f"https://attacker.invalid/x.{SPACES}", TOKEN, False, False),
        ("http://127.0.0.1:7860/", TOKEN, False, False),
        ("http://127.0.0.1:7860/", TOKEN, True, True),  # the user said so
        (f"https://owner-space.{SPACES}/", None, True, False),
    ],
)
def test_one_token_rule(url, token, explicit, sent) -> None:
    assert (token_for(url, token, explicit) is not None) is sent


def test_environment_token_never_reaches_another_space(
    preview_space, tmp_path, monkeypatch, capfd
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    running = launch_studio(preview_space.url, tmp_path / "outputs")
    try:
        client = Client(running.url, verbose=False, download_files=False)
        client.predict(*generate_args("no token for you"), api_name="/generate")
    finally:
        running.close()
    assert cli.main(cli_args("cli too", preview_space.url, tmp_path / "cli")) == 0
    seen = preview_space.config.seen_headers
    assert len(seen) >= 2
    assert not any(TOKEN in value for headers in seen for value in headers.values())
    logs = capfd.readouterr()
    assert TOKEN not in logs.out + logs.err


def test_explicit_token_file_goes_where_told_and_the_log_says_so_once(
    preview_space, tmp_path, caplog
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    caplog.set_level(logging.WARNING, logger="sd35.tokens")
    for prompt in ("first", "second"):
        args = cli_args(prompt, preview_space.url, tmp_path / "out", "--token-file", token_file)
        assert cli.main(args) == 0
    assert any(
        h.get("x-hf-authorization") == f"Bearer {TOKEN}" for h in preview_space.config.seen_headers
    )
    host = urllib.parse.urlsplit(preview_space.url).netloc
    notes = [r.getMessage() for r in caplog.records if host in r.getMessage()]
    assert len(notes) <= 1 and TOKEN not in caplog.text  # once per process, never the token


# --- 2. one user cannot fetch another's files ------------------------------------------------


@pytest.fixture
def outside_outputs() -> Path:
    """An output folder outside the working and temp folders (like ~/Pictures/sd35)."""
    home = Path(os.environ.get("SD35_TEST_OUTSIDE", Path.home() / ".cache" / "sd35-tests"))
    home.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=home))
    assert not str(folder).startswith((os.getcwd(), tempfile.gettempdir()))
    yield folder / "outputs"
    shutil.rmtree(folder, ignore_errors=True)


def test_a_user_cannot_fetch_another_users_files(preview_space, outside_outputs) -> None:
    running = launch_studio(preview_space.url, outside_outputs, auth=[ALICE, BOB])
    try:
        alice = Client(running.url, auth=ALICE, verbose=False, download_files=False)
        image = alice.predict(*generate_args("alice's secret garden"), api_name="/generate")[0]
        # Alice's page gets her image (through Gradio's cache, not the output folder).
        assert login(running.url, ALICE).get(image["url"]).status_code == 200
        store = running.studio.store
        item = store.list(user="alice").items[0]
        bob = login(running.url, BOB)
        targets = [item.path, item.thumbnail_path, store.index_path, store.root]
        for target in targets:
            response = bob.get(f"gradio_api/file={target}")
            assert response.status_code in (403, 404), (target, response.status_code)
        assert store.list(user="bob").total == 0
        assert not any(str(outside_outputs) in str(p) for p in running.page.allowed_paths)
    finally:
        running.close()


# --- 3. --auth covers the APIs and MCP -------------------------------------------------------


@pytest.fixture
def auth_api_app(preview_space, tmp_path):
    running = launch_studio(
        preview_space.url, tmp_path / "outputs", auth=[ALICE], api=True, mcp=True
    )
    yield running
    running.close()


def test_with_auth_the_apis_refuse_anonymous_callers(auth_api_app, preview_space) -> None:
    url = auth_api_app.url
    body = {"prompt": "an anonymous kite", "size": "512x512", "response_format": "url"}
    started = preview_space.config.jobs_started
    assert httpx.post(f"{url}v1/images/generations", json=body, timeout=30).status_code == 401
    assert httpx.post(f"{url}sdapi/v1/txt2img", json=body, timeout=30).status_code == 401
    assert preview_space.config.jobs_started == started  # nothing generated
    made = httpx.post(f"{url}v1/images/generations", json=body, auth=ALICE, timeout=60)
    assert made.status_code == 200, made.text
    link = made.json()["data"][0]["url"]
    # The link is OpenAI's kind: unguessable, short-lived, fetched by a tool's server without
    # credentials, and it opens that one image only; the stored image's own id opens nothing.
    assert httpx.get(link, timeout=30).status_code == 200
    image_id = auth_api_app.studio.store.list(user="alice").items[0].id
    by_id = httpx.get(f"{url}v1/images/files/{image_id}.png", timeout=30)
    assert by_id.status_code == 404
    # Alice made it, so Alice's page lists it.
    assert auth_api_app.studio.store.list(user="alice").total == 1


def test_with_auth_mcp_refuses_anonymous_callers(auth_api_app) -> None:
    import asyncio

    from tests.test_api import _mcp

    call = {"prompt": "an anonymous boat", "seed": 1}
    _, refused = asyncio.run(_mcp(auth_api_app.url, call=call))
    assert refused.isError
    basic = httpx.BasicAuth(*ALICE)._auth_header
    _, accepted = asyncio.run(_mcp(auth_api_app.url, {"Authorization": basic}, call))
    assert not accepted.isError
    assert auth_api_app.studio.store.list(user="alice").total == 1


# --- 4. no web page can use the local API ------------------------------------------------------


@pytest.fixture
def open_api_app(preview_space, tmp_path):
    running = launch_studio(preview_space.url, tmp_path / "outputs", api=True)
    yield running
    running.close()


def test_cross_site_requests_are_refused(open_api_app, preview_space) -> None:
    url = open_api_app.url
    store = open_api_app.studio.store
    started = preview_space.config.jobs_started
    simple = {"content-type": "text/plain", "origin": FOREIGN}
    text = '{"prompt": "made by another site", "size": "512x512"}'
    for path in ("v1/images/generations", "sdapi/v1/txt2img", "sdapi/v1/interrupt"):
        response = httpx.post(url + path, content=text, headers=simple, timeout=30)
        assert response.status_code == 403, (path, response.status_code)
        # JSON from a foreign page (what a preflight would precede) is refused as well.
        response = httpx.post(url + path, json={}, headers={"origin": FOREIGN}, timeout=30)
        assert response.status_code == 403
    # A text/plain body without an Origin (a form, an old browser) is refused too.
    plain = httpx.post(url + "v1/images/generations", content=text, timeout=30)
    assert plain.status_code == 415
    # The page's own endpoints refuse a foreign page's POST.
    join = httpx.post(url + "gradio_api/queue/join", content="{}", headers=simple, timeout=30)
    assert join.status_code == 403
    assert preview_space.config.jobs_started == started and store.count() == 0


def test_foreign_host_names_are_refused_and_links_use_our_address(open_api_app) -> None:
    url = open_api_app.url
    port = urllib.parse.urlsplit(url).port
    for name in ("attacker.invalid", f"attacker.invalid:{port}", "rebound.localtest"):
        response = httpx.get(url + "v1/models", headers={"host": name}, timeout=30)
        assert response.status_code == 421, name
        assert httpx.get(url, headers={"host": name}, timeout=30).status_code == 421
    for name in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.get(url + "v1/models", headers={"host": name}, timeout=30).status_code == 200
    made = httpx.post(
        url + "v1/images/generations",
        json={"prompt": "a link", "size": "512x512", "response_format": "url"},
        timeout=60,
    )
    assert made.status_code == 200, made.text
    assert made.json()["data"][0]["url"].startswith(url)
    # The page itself still works with JSON from its own origin.
    origin = url.rstrip("/")
    own = httpx.post(url + "v1/images/generations", json={"prompt": ""}, headers={"origin": origin})
    assert own.status_code == 400


def test_allowed_host_names() -> None:
    from sd35.api.guard import HostPolicy

    policy = HostPolicy("127.0.0.1", ["studio.lan"])
    assert policy.host_ok("studio.lan:7860") and policy.host_ok("STUDIO.LAN")
    assert policy.host_ok("192.168.1.20:7860") and policy.host_ok("localhost")
    assert not policy.host_ok("attacker.invalid") and not policy.host_ok(None)
    assert policy.origin_ok("http://127.0.0.1:7860", "127.0.0.1:7860")
    assert policy.origin_ok("http://studio.lan:7860", "127.0.0.1:7860")
    for origin in ("null", FOREIGN, "http://127.0.0.1:9999", "http://192.168.1.20:7860"):
        assert not policy.origin_ok(origin, "127.0.0.1:7860"), origin
    named = HostPolicy("studio.home")
    assert named.host_ok("studio.home:7860") and not named.host_ok("other.home")


# --- routes answer from the first request ---------------------------------------------------


def test_api_routes_answer_from_the_first_request(preview_space, tmp_path) -> None:
    port = free_port()
    statuses: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() and not statuses:
            with contextlib.suppress(httpx.TransportError):
                statuses.append(
                    httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code
                )

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    from sd35.server import ServerOptions, start

    options = ServerOptions(port=port, space=preview_space.url, output_dir=tmp_path / "o", api=True)
    running = start(options)
    try:
        wait_for(lambda: statuses)
        assert statuses[0] == 200
    finally:
        done.set()
        running.close()


# --- 5. a full disk does not lose the image ----------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A 2 MB tmpfs (needs root; skipped where mounting is not allowed)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path, leave: int = 4096) -> Path:
    """Fill the disk under ``folder`` up to ``leave`` bytes."""
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_keeps_the_image_and_saves_it_later(preview_space, tiny_disk) -> None:
    outputs = tiny_disk / "outputs"
    running = launch_studio(preview_space.url, outputs, api=True)
    try:
        keeper = running.studio.keeper
        filler = fill(tiny_disk)
        client = Client(running.url, verbose=False, download_files=False)
        with pytest.raises(AppError) as caught:
            client.predict(*generate_args("a costly image"), api_name="/generate")
        message = caught.value.message
        assert message.startswith(f"The image is safe but could not be saved to {outputs}")
        assert "the disk is full" in message and "Errno" not in message
        api = httpx.post(
            running.url + "v1/images/generations",
            json={"prompt": "another costly one", "size": "512x512"},
            timeout=60,
        )
        assert api.status_code == 507 and "the disk is full" in api.text
        assert keeper.pending == 2
        kept = sorted(keeper.fallback_dir.glob("kept-*.png"))
        assert len(kept) >= 2
        filler.unlink()
        # The next generation saves the kept ones first, then its own.
        client.predict(*generate_args("after the cleanup"), api_name="/generate")
        assert keeper.pending == 0 and running.studio.store.count() == 3
        prompts = {item.meta.prompt for item in running.studio.store.list().items}
        assert prompts == {"a costly image", "another costly one", "after the cleanup"}
        assert not any(path.exists() for path in kept)
    finally:
        running.close()


def test_an_unwritable_output_folder_is_refused_at_start(tmp_path, tiny_disk) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)], capture_output=True
    )
    assert done.returncode == 0, done.stderr
    try:
        result = subprocess.run(
            ["python3", "app.py", "--output-dir", str(readonly), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        subprocess.run(["umount", "-l", str(readonly)], capture_output=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Images cannot be written to {readonly}: the folder is read-only."
    ]


# --- leftovers ---------------------------------------------------------------------------------


def test_download_folders_are_removed(preview_space, tmp_path, monkeypatch) -> None:
    made: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        path = real_mkdtemp(*args, **kwargs)
        if "sd35-downloads-" in Path(path).name:
            made.append(Path(path))
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    running = launch_studio(preview_space.url, tmp_path / "outputs")
    try:
        client = Client(running.url, verbose=False, download_files=False)
        client.predict(*generate_args("leave nothing behind"), api_name="/generate")
        assert made and any(made[0].iterdir())  # the Space's image was downloaded there
    finally:
        running.close()
    assert cli.main(cli_args("cli", preview_space.url, tmp_path / "c")) == 0
    assert len(made) == 2 and not any(path.exists() for path in made)


# --- the gallery folder ------------------------------------------------------------------------


def test_links_out_of_the_gallery_and_truncated_pngs_are_not_served(tmp_path, caplog) -> None:
    from PIL import Image

    from sd35.gallery import SQLiteGalleryStore
    from sd35.metadata import ImageMetadata

    secret = tmp_path / "private" / "secret.png"
    secret.parent.mkdir()
    Image.new("RGB", (8, 8), "red").save(secret)
    with SQLiteGalleryStore(tmp_path / "outputs") as store:
        meta = ImageMetadata(prompt="a whole image", space="test", created_at="")
        whole = store.save(Image.new("RGB", (64, 64), "blue"), meta)
        day = whole.path.parent
        (day / "linked-out.png").symlink_to(secret)
        (day / "linked-in.png").symlink_to(whole.path)  # inside the gallery: fine
        data = whole.path.read_bytes()
        (day / "cut-off.png").write_bytes(data[: len(data) // 2])
        (tmp_path / "outputs" / "2001-01-01").symlink_to(secret.parent, target_is_directory=True)
        caplog.set_level(logging.WARNING, logger="sd35.gallery")
        report = store.reconcile()
        ids = {item.id for item in store.list().items}
        assert ids == {whole.id, "linked-in"}
        assert any("cut-off.png" in path for path in report.skipped)
        assert "truncated" in caplog.text and "outside the gallery" in caplog.text
