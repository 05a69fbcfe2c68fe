"""Starting the studio: options, safety checks, and ``launch``. ``app.py`` calls ``main``.

The page comes up without waiting on the Space: the Space client connects lazily and the
status line is filled in by a background thread.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sd35.cli import read_token
from sd35.space_client import DEFAULT_SPACE, SpaceClient
from sd35.studio import Studio, open_store


@dataclass
class ServerOptions:
    """Everything ``python app.py`` can be told."""

    host: str = "127.0.0.1"
    port: int = 7860
    space: str = DEFAULT_SPACE
    demo: bool = False
    output_dir: Path = Path("outputs")
    token_file: str | None = None
    proxy: str | None = None
    share: bool = False
    insecure_share: bool = False
    auth: list[tuple[str, str]] = field(default_factory=list)
    concurrency: int = 8
    max_queue: int = 64
    timeout: float = 900.0
    #: Sessions whose page state Gradio keeps in memory (each holds a copy of the page's
    #: config, about 0.7 MB here); the oldest are forgotten first. Gradio's default, 10,000,
    #: lets memory grow by gigabytes under API load (measured: bench/load.py).
    session_capacity: int = 100
    #: Serve the OpenAI Images and AUTOMATIC1111 APIs beside the page (``sd35.api``).
    api: bool = False
    api_key: str | None = None
    api_auth: list[tuple[str, str]] = field(default_factory=list)
    #: Serve the ``generate_image`` MCP tool through Gradio's MCP server.
    mcp: bool = False


class StartupError(Exception):
    """The options are unsafe or inconsistent; the message says what to do."""


def parse_args(argv: list[str] | None = None) -> ServerOptions:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python app.py", description="sd35 studio page")
    parser.add_argument("--host", default=env.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument(
        "--space",
        default=env.get("SD35_SPACE", DEFAULT_SPACE),
        help="Space id or URL to drive (default: %(default)s; env SD35_SPACE)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start a local stand-in Space and use it (no network or quota needed)",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("outputs"))
    parser.add_argument("--token-file", help="file with a Hugging Face token (else HF_TOKEN)")
    parser.add_argument("--proxy", help="HTTP(S) proxy URL for every request to the Space")
    parser.add_argument("--share", action="store_true", help="create a public Gradio link")
    parser.add_argument(
        "--insecure-share",
        action="store_true",
        help="allow --share without --auth (anyone with the link can use your quota)",
    )
    parser.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="USER:PASS",
        help="require a login (repeat for several users)",
    )
    parser.add_argument("--auth-file", type=Path, help="file of USER:PASS lines")
    parser.add_argument("--concurrency", type=int, default=8, help="generations at once")
    parser.add_argument("--max-queue", type=int, default=64, help="waiting jobs at most")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per image, max")
    parser.add_argument(
        "--api", action="store_true", help="also serve the OpenAI Images and A1111 APIs"
    )
    parser.add_argument(
        "--api-key",
        default=env.get("SD35_API_KEY"),
        help="Bearer key for the APIs (env SD35_API_KEY)",
    )
    parser.add_argument(
        "--api-auth",
        action="append",
        default=[],
        metavar="USER:PASS",
        help="HTTP Basic credentials for the APIs (like A1111's --api-auth)",
    )
    parser.add_argument("--mcp", action="store_true", help="serve the generate_image MCP tool")
    args = parser.parse_args(argv)
    pairs = list(args.auth)
    if args.auth_file:
        pairs += [
            line.strip()
            for line in args.auth_file.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
    try:
        auth = [_split_credentials(pair) for pair in pairs]
        api_auth = [_split_credentials(pair) for pair in args.api_auth]
    except ValueError as exc:
        parser.error(str(exc))
    return ServerOptions(
        host=args.host,
        port=args.port,
        space=args.space,
        demo=args.demo,
        output_dir=args.output_dir,
        token_file=args.token_file,
        proxy=args.proxy,
        share=args.share,
        insecure_share=args.insecure_share,
        auth=auth,
        concurrency=max(1, args.concurrency),
        max_queue=max(1, args.max_queue),
        timeout=args.timeout,
        api=args.api,
        api_key=args.api_key or None,
        api_auth=api_auth,
        mcp=args.mcp,
    )


def _split_credentials(pair: str) -> tuple[str, str]:
    user, sep, password = pair.partition(":")
    if not sep or not user or not password:
        raise ValueError(f"credentials must look like USER:PASS (got {user or '?'}:…)")
    return user, password


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_safety(options: ServerOptions) -> list[str]:
    """Refuse a public link without a login; return warnings for other exposed setups."""
    if options.share and not options.auth and not options.insecure_share:
        raise StartupError(
            "--share makes a public link that anyone can use (with your quota and token). "
            "Add --auth USER:PASS, or pass --insecure-share if you really want it open."
        )
    exposed = options.share or not is_loopback(options.host)
    if (options.api or options.mcp) and exposed and not (options.api_key or options.api_auth):
        raise StartupError(
            "The APIs would be reachable from other machines without credentials. "
            "Add --api-key KEY (or SD35_API_KEY) or --api-auth USER:PASS."
        )
    warnings = []
    if not is_loopback(options.host) and not options.auth:
        warnings.append(
            f"Warning: serving on {options.host} without --auth: anyone on your network can "
            "use this studio and see its images."
        )
    return warnings


@dataclass
class RunningStudio:
    """What ``start`` returns: the studio, the page, its URL, and the demo stand-in if any."""

    studio: Studio
    page: Any
    url: str
    standin: Any = None

    def close(self) -> None:
        self.studio.stop_background()
        self.page.close()
        self.studio.client.close()
        if self.standin is not None:
            self.standin.stop()


def start(options: ServerOptions, *, block: bool = False) -> RunningStudio:
    """Build and launch the page. With ``block=False`` it returns once the page answers."""
    from sd35.ui import CSS, HEAD, build_ui

    for line in check_safety(options):
        print(line, file=sys.stderr)
    standin = None
    space = options.space
    if options.demo:
        from sd35.standin import StandinConfig, StandinServer

        standin = StandinServer(
            StandinConfig(previews=True, seconds_per_step=0.05, concurrency=options.concurrency)
        )
        standin.start()
        space = standin.url
    client = SpaceClient(
        space,
        token=read_token(options.token_file),
        proxy=options.proxy,
        download_dir=Path(tempfile.mkdtemp(prefix="sd35-downloads-")),
        timeout=options.timeout,
    )
    store = open_store(options.output_dir)
    studio = Studio(client, store, demo=options.demo, concurrency=options.concurrency)
    studio.start_background()
    page = build_ui(studio)
    if options.mcp:
        from sd35.api import add_mcp_tool

        add_mcp_tool(page, studio, api_key=options.api_key, api_auth=options.api_auth)
    page.queue(max_size=options.max_queue, default_concurrency_limit=options.concurrency)
    output_dir = options.output_dir.resolve()
    allowed = [] if _inside(output_dir, Path.cwd(), Path(tempfile.gettempdir())) else [output_dir]
    _, local_url, share_url = page.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        auth=options.auth or None,
        # Never block here: the APIs are mounted on the running app below, then we block.
        prevent_thread_lock=True,
        # Our own lines instead of Gradio's (which advise `share=True`, wrong for this app).
        quiet=True,
        show_error=False,
        ssr_mode=False,
        allowed_paths=[str(path) for path in allowed],
        footer_links=["api"],
        head=HEAD,
        css=CSS,
        mcp_server=options.mcp,
        state_session_capacity=options.session_capacity,
    )
    if options.api:
        from sd35.api import mount_api

        mount_api(page, studio, api_key=options.api_key, api_auth=options.api_auth)
    if block:
        print(f"sd35 studio on {local_url} (Ctrl+C stops)", flush=True)
        if share_url:
            print(f"Public link (login required): {share_url}", flush=True)
    _announce_space_later(studio, space)
    if block:
        page.block_thread()
    return RunningStudio(studio=studio, page=page, url=local_url or "", standin=standin)


def _announce_space_later(studio: Studio, space: str, *, within: float = 120.0) -> None:
    """Once the first status check is in: one terminal line if the Space cannot be reached
    (the page's status line says the same), suggesting ``--demo``."""
    from sd35.panels.wording import startup_line

    def wait_and_tell() -> None:
        waiting = threading.Event()
        for _ in range(int(within / 0.2)):
            if studio.status is not None:
                line = startup_line(studio.status, space=space)
                if line and not studio.demo:
                    print(line, file=sys.stderr, flush=True)
                return
            waiting.wait(0.2)  # the status thread has no event to wait on

    threading.Thread(target=wait_and_tell, name="sd35-startup-line", daemon=True).start()


def _inside(path: Path, *folders: Path) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        start(options, block=True)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
