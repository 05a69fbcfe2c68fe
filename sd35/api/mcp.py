"""The ``generate_image`` MCP tool on Gradio's own MCP server (``--mcp``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import gradio as gr

from sd35.api.auth import Credentials, unauthorized
from sd35.api.errors import ApiError
from sd35.api.jobs import gate_of, generate_images
from sd35.api.parsing import seed_or_random
from sd35.errors import SD35Error
from sd35.page_files import PageFiles
from sd35.params import aspect_ratio_presets, build_request
from sd35.studio import Studio


def add_mcp_tool(
    page: gr.Blocks,
    studio: Studio,
    *,
    api_key: str | None = None,
    api_auth: Sequence[tuple[str, str]] = (),
    files: PageFiles | None = None,
) -> None:
    """Add the ``generate_image`` MCP tool to ``page`` (call before ``launch(mcp_server=True)``).

    Gradio's MCP server makes a tool of every public named endpoint of the Blocks, named after
    its function, described by its docstring. The tool is a hidden event (real components, so
    the image reaches MCP clients as an image, not a file path) that runs without the queue:
    Gradio then calls it in-process, with no loopback through ``gradio_client`` (which would not
    be logged in when the page has ``--auth``). The page's other public endpoints (its
    ``/generate`` for ``gradio_client``) are marked so that MCP does not list them.

    The MCP endpoint is not behind the page's login, so the tool checks the API credentials
    itself (from the MCP request's ``Authorization`` header) when any are given (``server``
    passes the page's ``--auth`` users too, so a login page never leaves MCP open). The image
    reaches Gradio through ``files`` (``sd35.page_files``), never from an allowed output folder.
    """
    files = files or PageFiles()
    credentials = Credentials(api_key or None, tuple(api_auth or ()))
    gate = gate_of(studio)
    ratios = list(aspect_ratio_presets(studio.schema()))

    async def generate_image(
        prompt: str,
        negative_prompt: str,
        aspect_ratio: str,
        seed: float | None,
        request: gr.Request,
    ) -> tuple[str, str, int]:
        """Generate an image with Stable Diffusion 3.5 Large and save it as a PNG with its
        parameters in the studio's gallery.

        Args:
            prompt: What the image should show, e.g. "a lighthouse at dusk, oil painting".
            negative_prompt: What the image should not show; may be empty.
            aspect_ratio: Width to height, one of {ratios}.
            seed: A seed from 0 to 2147483647 for a reproducible image; -1 picks a random one.

        Returns:
            The generated image, the path of the saved PNG, and the seed used.
        """
        authorization = request.headers.get("authorization") if request else None
        accepted, owner = credentials.identify(authorization)
        if not accepted:
            raise gr.Error(unauthorized(credentials, authorization).message, title="Unauthorized")
        try:
            chosen = seed_or_random(seed)
            generation = build_request(
                prompt,
                negative_prompt=negative_prompt,
                aspect_ratio=aspect_ratio or "1:1",
                seed=int(chosen) if isinstance(chosen, float) and chosen.is_integer() else chosen,
                randomize_seed=chosen is None,
                schema=studio.schema(),
            )
            with gate.slot():
                (saved,) = await generate_images(studio, generation, 1, owner)
        except ApiError as error:
            raise gr.Error(error.message, title=error.title, print_exception=False) from None
        except SD35Error as error:
            raise gr.Error(error.message, title=error.title, print_exception=False) from None
        path = str(saved.image.path)
        return files.for_page(saved.image.path), path, saved.result.seed

    # Gradio reads the tool's description from the docstring (one line per argument).
    generate_image.__doc__ = (generate_image.__doc__ or "").replace("{ratios}", ", ".join(ratios))

    with page, gr.Column(visible=False):
        inputs = [
            gr.Textbox(label="Prompt"),
            gr.Textbox(label="Negative prompt", value=""),
            gr.Dropdown(ratios, value="1:1", label="Aspect ratio"),
            gr.Number(value=-1, precision=0, label="Seed"),
        ]
        outputs = [
            gr.Image(type="filepath", format="png", label="Image"),
            gr.Textbox(label="Saved PNG"),
            gr.Number(precision=0, label="Seed used"),
        ]
        trigger = gr.Button(visible=False)
        trigger.click(
            generate_image,
            inputs,
            outputs,
            api_name="generate_image",
            queue=False,
            show_progress="hidden",
        )
    _only_tool(page, "generate_image")


def _only_tool(page: gr.Blocks, api_name: str) -> None:
    """Keep every public endpoint but ``api_name`` out of the MCP tool list: Gradio lists an
    endpoint as a tool unless its function carries an ``_mcp_type`` other than "tool" (what
    ``gr.mcp.resource``/``gr.mcp.prompt`` set); "none" makes it neither."""
    for block_fn in page.fns.values():
        fn = block_fn.fn
        if fn is None or block_fn.api_visibility != "public" or block_fn.api_name == api_name:
            continue
        with contextlib.suppress(AttributeError, TypeError):
            fn._mcp_type = "none"
