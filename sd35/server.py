"""Starting the studio: options, safety checks, and ``launch``. ``app.py`` calls ``main``.

The page comes up without waiting on the Space: the Space client connects lazily and the
status line is filled in by a background thread.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sd35.backends import build_backends, choose_backends
from sd35.backends.config import add_backend_arguments, status_client
from sd35.gallery import SQLiteGalleryStore
from sd35.options import OneLineParser, finite_number, port_number
from sd35.page_files import PageFiles
from sd35.params import DEFAULT_SPACE
from sd35.studio import Studio
from sd35.tokens import environment_token, read_token_file

if TYPE_CHECKING:
    from sd35.api.guard import HostPolicy


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
    #: Host names (besides addresses, ``localhost`` and ``--host``) the server answers to.
    allowed_hosts: list[str] = field(default_factory=list)
    #: The backends in failover order (``--backend``/``--space``, ``SD35_BACKENDS``); None:
    #: ``space`` alone.
    backends: Any = None


class StartupError(Exception):
    """The options are unsafe or inconsistent; the message says what to do."""


def parse_args(argv: list[str] | None = None) -> ServerOptions:
    env = os.environ
    parser = OneLineParser(prog="python app.py", description="sd35 studio page")
    parser.add_argument("--host", default=env.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=port_number, default=env.get("GRADIO_SERVER_PORT", "7860"))
    add_backend_arguments(parser)  # --space and --backend
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
    parser.add_argument(
        "--timeout", type=finite_number, default=900.0, help="seconds per image, max"
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the server answers to besides its address and localhost (repeatable;"
        " e.g. the name of a reverse proxy)",
    )
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
        try:
            text = args.auth_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read --auth-file {args.auth_file}: {_why(exc)}")
        pairs += [
            line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
        ]
    if args.token_file and not Path(args.token_file).is_file():
        parser.error(f"cannot read --token-file {args.token_file}: no such file")
    try:
        auth = [_split_credentials(pair) for pair in pairs]
        api_auth = [_split_credentials(pair) for pair in args.api_auth]
        backends = choose_backends(args.backend_specs, token_explicit=bool(args.token_file))
    except ValueError as exc:
        parser.error(str(exc))
    return ServerOptions(
        host=args.host,
        port=args.port,
        space=backends.first_space,
        backends=backends,
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
        allowed_hosts=list(args.allowed_host),
    )


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


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
    credentials = options.api_key or options.api_auth or options.auth  # --auth covers the APIs
    if (options.api or options.mcp) and exposed and not credentials:
        raise StartupError(
            "The APIs would be reachable from other machines without credentials. "
            "Add --auth USER:PASS, --api-key KEY (or SD35_API_KEY) or --api-auth USER:PASS."
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
    files: PageFiles | None = None
    downloads: Path | None = None

    def close(self) -> None:
        self.studio.close()
        self.page.close()
        self.studio.client.close()
        for backend in getattr(self.studio, "backends", None) or []:
            backend.close()
        if self.standin is not None:
            self.standin.stop()
        if self.files is not None:
            self.files.close()
        if self.downloads is not None:  # the Space's downloads: every image is saved by now
            shutil.rmtree(self.downloads, ignore_errors=True)


def check_output_dir(folder: Path) -> None:
    """Make sure images can be written to ``folder`` (created if missing); ``StartupError``
    saying why not, before the page comes up."""
    if folder.exists() and not folder.is_dir():
        raise StartupError(f"The output folder {folder} is a file, not a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".sd35-write-test-"):
            pass
    except OSError as exc:
        from sd35.safekeeping import reason

        raise StartupError(f"Images cannot be written to {folder}: {reason(exc)}.") from None


def start(options: ServerOptions, *, block: bool = False) -> RunningStudio:
    """Build and launch the page. With ``block=False`` it returns once the page answers."""
    from sd35.api.guard import HostPolicy
    from sd35.gradio_tuning import tune_gradio
    from sd35.ui import CSS, HEAD, build_ui

    for line in check_safety(options):
        print(line, file=sys.stderr)
    check_output_dir(options.output_dir)
    standin = None
    space = options.space
    if options.demo:
        from sd35.standin import StandinConfig, StandinServer

        standin = StandinServer(
            StandinConfig(previews=True, seconds_per_step=0.05, concurrency=options.concurrency)
        )
        standin.start()
        space = standin.url
    downloads = Path(tempfile.mkdtemp(prefix="sd35-downloads-"))
    backends = _backends(options, space, downloads)
    # No Space configured: the status line still looks at the official one.
    client = status_client(backends, proxy=options.proxy)
    from sd35.api.jobs import Gate
    from sd35.scheduler import start_queue

    files = PageFiles()
    studio = Studio(
        client,
        SQLiteGalleryStore(options.output_dir),
        backends=backends,
        gate=Gate(options.concurrency),  # the API and MCP generations at once
        demo=options.demo,
        concurrency=options.concurrency,
        files=files,
    )
    studio.start_background()
    start_queue(studio, concurrency=options.concurrency, max_queue=options.max_queue)
    page = build_ui(studio)
    # --auth covers the APIs and MCP too: the page's users may call them with HTTP Basic.
    users = [*options.api_auth, *options.auth]
    if options.mcp:
        from sd35.api import add_mcp_tool

        add_mcp_tool(page, studio, api_key=options.api_key, api_auth=users, files=files)
    page.queue(max_size=options.max_queue, default_concurrency_limit=options.concurrency)
    tune_gradio(page)  # Gradio's idle polling and per-event import: sd35/gradio_tuning.py
    hosts = HostPolicy(options.host, options.allowed_hosts)
    _, local_url, share_url = page.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        auth=options.auth or None,
        # Never block here; ``block_thread`` below once everything is up.
        prevent_thread_lock=True,
        # Our own lines instead of Gradio's (which advise `share=True`, wrong for this app).
        quiet=True,
        show_error=False,
        ssr_mode=False,
        # Nothing of the output folder: ``PageFiles`` hands Gradio what a user may see.
        allowed_paths=[],
        # Our routes and the cross-site guard are part of the app before it answers at all.
        app_kwargs=_app_kwargs(studio, options.api_key, users if options.api else None, hosts),
        footer_links=["api"],
        head=HEAD,
        css=CSS,
        mcp_server=options.mcp,
        state_session_capacity=options.session_capacity,
    )
    if share_url:
        hosts.allow(urllib.parse.urlsplit(share_url).hostname or "")
    running = RunningStudio(studio, page, local_url or "", standin, files, downloads)
    if block:
        print(f"sd35 studio on {local_url} (Ctrl+C stops)", flush=True)
        if share_url:
            print(f"Public link (login required): {share_url}", flush=True)
    _announce_space_later(studio, space)
    if block:
        page.block_thread()
    return running


def _app_kwargs(
    studio: Studio,
    api_key: str | None,
    api_users: list[tuple[str, str]] | None,
    hosts: HostPolicy,
) -> dict[str, Any]:
    """FastAPI arguments for the page's app: the cross-site guard, and (``api_users`` not
    None) the API routes, first in the route list so no Gradio route can shadow them."""
    from starlette.middleware import Middleware

    from sd35.api.guard import CrossSiteGuard
    from sd35.cache_headers import ImmutableCaching

    # The page opens faster when what never changes is not asked for again (the module says).
    middleware = [Middleware(CrossSiteGuard, policy=hosts), Middleware(ImmutableCaching)]
    kwargs: dict[str, Any] = {"middleware": middleware}
    if api_users is not None:
        from sd35.api import api_routes

        kwargs["routes"] = api_routes(studio, api_key=api_key, api_auth=api_users)
    return kwargs


def _backends(options: ServerOptions, space: str, downloads: Path) -> list[Any]:
    """The configured backends (the demo's stand-in alone with ``--demo``); the token goes
    only where ``sd35.tokens`` allows. ``StartupError`` when the token file cannot be read."""
    choice = options.backends
    if choice is None or options.demo:
        choice = choose_backends(
            [(f"space:{space}", True)], env={}, token_explicit=bool(options.token_file)
        )
    try:
        token = read_token_file(options.token_file) if options.token_file else environment_token()
    except OSError as exc:
        raise StartupError(f"cannot read --token-file {options.token_file}: {_why(exc)}") from None
    return build_backends(
        choice, token=token, proxy=options.proxy, timeout=options.timeout, download_dir=downloads
    )


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


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        start(options, block=True)
    except (StartupError, OSError) as exc:  # e.g. the port is taken: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
