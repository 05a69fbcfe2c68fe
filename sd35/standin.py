"""A stand-in for the Stable Diffusion 3.5 Large Space, served locally for tests and demos.

This is a real Gradio app that declares exactly the API of the real Space
(``stabilityai/stable-diffusion-3-5-large``, see docs/space-api.md): the same components in the same
order, the same ``gr.on(...)`` event named ``/infer``, ``gr.Progress(track_tqdm=True)`` fed
by a ``tqdm`` loop, WebP output. Instead of a diffusion model it paints a deterministic
picture from the request, and it can be told (through a mutable :class:`StandinConfig`) to be
slow, to stream previews, or to fail the ways the real Space fails (ZeroGPU quota, generation
error, crash, the server process dying mid-run, no image).

Use it in-process::

    with StandinServer(StandinConfig(seconds_per_step=0.01)) as server:
        client = gradio_client.Client(server.url)

or as a process: ``python -m sd35.standin --port 7861 --previews`` (prints its URL as the
first line of stdout, serves until Ctrl+C / SIGTERM).
"""

import os

# Before gradio is imported: Gradio reads these at import/Blocks() time, and a stand-in must
# never try to phone home (this machine has no network but loopback anyway).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse
import asyncio
import contextlib
import functools
import hashlib
import inspect
import io
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import tqdm
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from sd35.params import INPUT_ORDER

__all__ = [
    "CRASH_MESSAGE",
    "ERROR_MESSAGE",
    "FAULTS",
    "MAX_SEED",
    "QUOTA_MESSAGE",
    "QUOTA_TITLE",
    "QUOTA_WAIT_MESSAGE",
    "StandinConfig",
    "StandinServer",
    "build_standin",
    "main",
    "paint_image",
    "paint_preview",
    "save_webp",
    "textured_image",
]

MAX_SEED = 2147483647  # np.iinfo(np.int32).max, as in the real Space's app.py
MIN_IMAGE_SIZE = 512
MAX_IMAGE_SIZE = 1024

#: ZeroGPU's own texts (the `spaces` package raises them as gr.Error), verbatim.
QUOTA_TITLE = "ZeroGPU quota exceeded"
QUOTA_MESSAGE = (
    "You have exceeded your GPU quota (60s requested vs. 56s left). "
    '<a style="white-space: nowrap;text-underline-offset: 2px;color: var(--body-text-color)" '
    'href="https://huggingface.co/join">Create a free account</a> to get more usage quota.'
)
QUOTA_WAIT_MESSAGE = (
    "You have exceeded your GPU quota (46s left vs. 60s requested). "
    "Sign-up on Hugging Face to get more quotas or retry in 0:09:48."
)
ERROR_MESSAGE = "CUDA out of memory. Tried to allocate 2.00 GiB"
CRASH_MESSAGE = "stand-in crash: unexpected failure in the sampler"

FAULTS = ("quota", "quota_wait", "error", "crash", "die", "no_image")
#: Faults that strike halfway through the steps rather than before the first one.
_MIDWAY_FAULTS = frozenset({"error", "crash", "die"})


@dataclass
class StandinConfig:
    """How the stand-in behaves. Mutable; most fields are read at each request.

    Fixed when the app is built (changing them later has no effect): ``previews`` (Gradio
    decides at build time whether the endpoint is a generator), ``concurrency``,
    ``max_queue_size``, ``api_name`` and ``show_error``.
    """

    seconds_per_step: float = 0.02
    previews: bool = False
    preview_every: int = 4
    concurrency: int = 1
    max_queue_size: int | None = None
    api_name: str = "infer"
    queue_hold: float = 0.0
    fault: str | None = None
    fault_once: str | None = None
    #: ``launch(show_error=...)``; the real Space uses the default (False), which hides the
    #: text of unexpected exceptions from clients.
    show_error: bool = False
    #: A quota fault (``quota``/``quota_wait`` in ``fault``) that lifts by itself: after this
    #: many refused calls, or this many seconds after the first refusal (whichever comes
    #: first); then ``fault`` is cleared. None: it never lifts.
    quota_lift_calls: int | None = None
    quota_lift_seconds: float | None = None
    #: The wait ``quota_wait`` names, as the Space words it ("H:MM:SS").
    quota_retry_in: str = "0:09:48"
    quota_refused: int = 0
    quota_first_refused: float | None = None
    #: Whether the ``die`` fault may ``os._exit`` this process. Off by default so that an
    #: in-process server cannot kill the test runner; ``main()`` turns it on.
    allow_die: bool = False
    #: Remote-compute mode: final images are painted and WebP-encoded once per size (a few
    #: variants, picked by seed) and then served from that stock, so a job costs this process
    #: no CPU of its own and its compute is only the sleep of its steps, as when the GPU is
    #: elsewhere. The pictures carry photo-like texture, so a client's PNG costs what a real
    #: image's would. Previews are still painted per job when asked for.
    premade: bool = False

    # What the stand-in saw; written by request threads under ``lock``. Every job that starts
    # ends exactly once, as finished, failed or cancelled (see ``job_outcome``).
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    seen_inputs: list[dict[str, Any]] = field(default_factory=list)
    jobs_started: int = 0
    jobs_finished: int = 0
    jobs_failed: int = 0
    jobs_cancelled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: Notified (under ``lock``) whenever a job starts or ends: what the waits wait on.
    changed: threading.Condition = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def take_fault(self) -> str | None:
        """The fault for the request starting now: ``fault_once`` (consumed) or ``fault``."""
        with self.lock:
            once, self.fault_once = self.fault_once, None
            if once is None and self.fault in ("quota", "quota_wait") and self._quota_lifted():
                self.fault = None
            fault = once if once is not None else self.fault
            if fault in ("quota", "quota_wait"):
                self.quota_refused += 1
                if self.quota_first_refused is None:
                    self.quota_first_refused = time.monotonic()
        if fault is not None and fault not in FAULTS:
            # Surfaces to the client like a crash; the server log says why.
            raise ValueError(f"unknown stand-in fault {fault!r}; expected one of {FAULTS}")
        return fault

    def _quota_lifted(self) -> bool:
        calls, seconds = self.quota_lift_calls, self.quota_lift_seconds
        if calls is not None and self.quota_refused >= calls:
            return True
        first = self.quota_first_refused
        return seconds is not None and first is not None and time.monotonic() - first >= seconds

    def quota_wait_message(self) -> str:
        """The ``quota_wait`` text, naming ``quota_retry_in``."""
        return QUOTA_WAIT_MESSAGE.replace("0:09:48", self.quota_retry_in)

    def count(self, counter: str) -> None:
        """Add one to ``jobs_<counter>`` (thread-safe) and wake whoever waits."""
        with self.changed:
            name = f"jobs_{counter}"
            setattr(self, name, getattr(self, name) + 1)
            self.changed.notify_all()

    @property
    def jobs_ended(self) -> int:
        """Jobs that finished, failed or were cancelled."""
        return self.jobs_finished + self.jobs_failed + self.jobs_cancelled

    def wait_ended(self, count: int, timeout: float = 20.0) -> None:
        """Block until ``count`` jobs in all have ended and none is still running (every job
        that started has ended); ``TimeoutError`` after ``timeout`` seconds. How a test learns
        that a cancelled job is over, instead of sleeping for as long as it would have run."""
        self._wait(lambda: count <= self.jobs_ended == self.jobs_started, timeout, f"{count} ended")

    def wait_started(self, count: int, timeout: float = 20.0) -> None:
        """Block until ``count`` jobs in all have started; ``TimeoutError`` after ``timeout``."""
        self._wait(lambda: self.jobs_started >= count, timeout, f"{count} started")

    def _wait(self, reached: Callable[[], bool], timeout: float, what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(reached, timeout):
                raise TimeoutError(
                    f"stand-in: waited {timeout:g} s for {what}; {self.jobs_started} started, "
                    f"{self.jobs_ended} ended"
                )

    @contextlib.contextmanager
    def job_outcome(self, request: gr.Request | None, inputs: dict[str, Any]) -> Iterator[None]:
        """Around one job: records what it was sent and counts its start (at once, so a test
        that saw the count sees the inputs), then counts how it ended, however it ends."""
        with self.changed:
            self.seen_headers.append(dict(request.headers) if request is not None else {})
            self.seen_inputs.append(inputs)
            self.jobs_started += 1
            self.changed.notify_all()
        outcome = "failed"
        try:
            yield
            outcome = "finished"
        except (GeneratorExit, asyncio.CancelledError):
            # Gradio closes a generator (GeneratorExit at its yield) or cancels the task
            # running it (CancelledError at its await) when the client cancels the job.
            outcome = "cancelled"
            raise
        finally:
            self.count(outcome)


# ----------------------------------------------------------------------------------------
# Painting


def _digest(
    prompt: str | None,
    negative_prompt: str | None,
    seed: int,
    width: int,
    height: int,
    guidance_scale: float,
) -> bytes:
    key = "\x1f".join(
        [
            prompt or "",
            negative_prompt or "",
            str(int(seed)),
            str(int(width)),
            str(int(height)),
            f"{float(guidance_scale):.3f}",
        ]
    )
    return hashlib.sha256(key.encode("utf-8")).digest()


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: fixed-size bitmap
        return ImageFont.load_default()


def _ascii(text: str) -> str:
    # Pillow's built-in font covers Latin only; keep the picture drawable for any prompt.
    return text.encode("ascii", "replace").decode("ascii")


def paint_image(
    prompt: str | None,
    negative_prompt: str | None,
    seed: int,
    width: int,
    height: int,
    guidance_scale: float,
) -> Image.Image:
    """The stand-in's "generated" picture: a pure function of its inputs (same inputs, same
    pixels), recognisable at a glance: a four-colour gradient, shapes, and the seed written
    on it. Takes a few milliseconds even at 1024×1024."""
    width, height = int(width), int(height)
    d = _digest(prompt, negative_prompt, seed, width, height, guidance_scale)
    rng = random.Random(d)

    # Four corner colours stretched bilinearly: a smooth gradient at the cost of one resize.
    corners = Image.new("RGB", (2, 2))
    corners.putdata([tuple(d[i : i + 3]) for i in (0, 3, 6, 9)])
    image = corners.resize((width, height), Image.Resampling.BILINEAR)

    draw = ImageDraw.Draw(image)
    for _ in range(7):
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        x0, y0 = rng.randrange(width), rng.randrange(height)
        size = rng.randrange(min(width, height) // 10, min(width, height) // 3)
        box = (x0 - size, y0 - size, x0 + size, y0 + size)
        kind = rng.randrange(3)
        if kind == 0:
            draw.ellipse(box, fill=colour, outline=(255, 255, 255), width=3)
        elif kind == 1:
            draw.rectangle(box, fill=colour, outline=(0, 0, 0), width=3)
        else:
            points = [(rng.randrange(width), rng.randrange(height)) for _ in range(3)]
            draw.polygon(points, fill=colour, outline=(255, 255, 255))

    # A caption band: seed, size and guidance, and the start of the prompt.
    font_size = max(12, width // 24)
    font = _font(font_size)
    band = int(font_size * 3.2)
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0))
    lines = [
        f"seed {int(seed)}  {width}x{height}  cfg {float(guidance_scale):g}",
        _ascii((prompt or "")[:60]),
    ]
    draw.multiline_text(
        (font_size // 2, height - band + font_size // 3),
        "\n".join(lines),
        fill=(255, 255, 255),
        font=font,
        spacing=font_size // 4,
    )
    return image


def paint_preview(final: Image.Image, noise: Image.Image, fraction: float) -> Image.Image:
    """An intermediate "denoising" frame: ``final`` seen at low resolution, blended with
    ``noise``; as ``fraction`` goes from 0 to 1 it converges on ``final``. Deterministic."""
    fraction = min(max(fraction, 0.0), 1.0)
    width, height = final.size
    # Lower resolution early on, like looking at the latents (1/8 scale and below).
    scale = 1 / 64 + (1 / 4 - 1 / 64) * fraction
    small = final.resize(
        (max(2, int(width * scale)), max(2, int(height * scale))), Image.Resampling.BOX
    )
    blurred = small.resize((width, height), Image.Resampling.BILINEAR)
    return Image.blend(noise.resize((width, height), Image.Resampling.NEAREST), blurred, fraction)


def _noise(digest: bytes, width: int, height: int) -> Image.Image:
    # Latent-sized (1/8) deterministic noise, upscaled blockily by paint_preview.
    w, h = max(1, width // 8), max(1, height // 8)
    return Image.frombytes("RGB", (w, h), random.Random(digest).randbytes(w * h * 3))


def save_webp(image: Image.Image, directory: str | Path) -> str:
    """Encode ``image`` as WebP (Pillow defaults, as Gradio's own PIL output path does) into
    ``directory/<content hash>/image.webp``, atomically, and return the path.

    Why not hand Gradio the PIL image: Gradio 6 saves PIL outputs to a content-addressed cache
    path with a plain truncate-and-write, so a deterministic stand-in returning the same picture
    twice rewrites a file a client may still be downloading (a truncated download; uvicorn logs
    "Too little data for declared Content-Length"). A returned *file* is copied into the cache
    atomically and only once.
    """
    buffer = io.BytesIO()
    image.save(buffer, "WEBP")
    data = buffer.getvalue()
    folder = Path(directory) / hashlib.sha256(data).hexdigest()[:32]
    target = folder / "image.webp"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=folder, prefix=".image.", suffix=".part")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(staging, target)
    return str(target)


#: How many different pictures the remote-compute mode keeps per size.
PREMADE_VARIANTS = 4


def textured_image(width: int, height: int, variant: int) -> Image.Image:
    """A stand-in picture with fine, photo-like texture: a painted image blended with blurred
    noise. Flat test patterns compress to almost nothing, which would make every PNG encoder
    look fast; a real photograph does not."""
    base = paint_image(f"remote compute {variant}", "", variant, width, height, 4.5)
    grain = Image.effect_noise((width, height), 48).filter(ImageFilter.GaussianBlur(0.8))
    return Image.blend(base, grain.convert("RGB"), 0.25)


class PremadeImages:
    """The remote-compute mode's stock: per size, ``PREMADE_VARIANTS`` WebP files made once."""

    def __init__(self, directory: str | Path) -> None:
        self._directory = Path(directory) / "premade"
        self._made: dict[tuple[int, int, int], str] = {}
        self._lock = threading.Lock()

    def path(self, width: int, height: int, seed: int) -> str:
        """The WebP for a job of this size and seed (made on the first job of a size)."""
        key = (int(width), int(height), int(seed) % PREMADE_VARIANTS)
        with self._lock:
            if key not in self._made:
                self._made[key] = save_webp(textured_image(*key), self._directory)
            return self._made[key]

    def prepare(self, width: int = MAX_IMAGE_SIZE, height: int = MAX_IMAGE_SIZE) -> None:
        """Make every variant of one size now, so that no job pays for it."""
        for variant in range(PREMADE_VARIANTS):
            self.path(width, height, variant)


# ----------------------------------------------------------------------------------------
# The Gradio app


def _preview_steps(steps: int, every: int) -> set[int]:
    """After which steps a preview goes out: every ``every`` steps, never after the last one
    (that is the final image), and at least once."""
    every = max(1, int(every))
    return set(range(every, steps, every)) or {max(1, steps // 2)}


def _space_parameters(
    prompt: str,
    negative_prompt: str = "",
    seed: float = 42,
    randomize_seed: bool = False,
    width: float = 1024,
    height: float = 1024,
    guidance_scale: float = 4.5,
    num_inference_steps: float = 40,
    request: gr.Request = None,  # type: ignore[assignment]  # filled in by Gradio
    progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's idiom)
) -> None:
    """The parameters of the real Space's ``infer``, written once for both modes. Gradio reads
    them from the function it is given: the names for ``view_api``, ``request`` by its type and
    ``progress`` by its default (neither of those two is an API input)."""


_SPACE_SIGNATURE = inspect.signature(_space_parameters)


def _with_space_parameters(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``fn(*args)`` the parameters of ``_space_parameters`` as Gradio sees them."""
    fn.__signature__ = _SPACE_SIGNATURE  # type: ignore[attr-defined]
    fn.__annotations__ = {
        k: v for k, v in _space_parameters.__annotations__.items() if k != "return"
    }
    return fn


def _arguments(args: tuple[Any, ...]) -> tuple[dict[str, Any], gr.Request | None]:
    """The eight API inputs (in the Space's order) and the request, out of ``infer``'s
    arguments as Gradio passes them."""
    bound = _SPACE_SIGNATURE.bind(*args)
    bound.apply_defaults()
    return {name: bound.arguments[name] for name in INPUT_ORDER}, bound.arguments["request"]


def build_standin(
    config: StandinConfig,
    stop_event: threading.Event | None = None,
    output_dir: str | Path | None = None,
) -> gr.Blocks:
    """Build the stand-in Space's Blocks (queue configured), laid out like the real app.py.

    Setting ``stop_event`` makes running jobs give up at their next step (so that closing the
    server does not wait for them; a sync job's thread cannot be interrupted otherwise).
    Images are written under ``output_dir`` (default: a temporary directory removed when the
    app is garbage-collected or the process exits) before Gradio copies them to its cache.
    """
    stopping = stop_event if stop_event is not None else threading.Event()
    owns_dir = output_dir is None
    images_dir = Path(tempfile.mkdtemp(prefix="sd35-standin-") if owns_dir else output_dir)
    stock = PremadeImages(images_dir)
    if config.premade:
        stock.prepare()

    def _pause(seconds: float) -> None:
        if seconds > 0:
            stopping.wait(seconds)
        if stopping.is_set():
            raise RuntimeError("stand-in server is shutting down")

    async def _pause_async(seconds: float) -> None:
        # Sleeps without holding a thread, in slices so that a server shutdown is noticed.
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and not stopping.is_set():
            await asyncio.sleep(min(left, 0.1))
        _pause(0)

    def _begin(inputs: dict[str, Any]) -> tuple[str | None, int, int]:
        """Take the job's fault; return (fault, seed, steps)."""
        fault = config.take_fault()
        seed = int(inputs["seed"])
        if inputs["randomize_seed"]:
            seed = random.randint(0, MAX_SEED)
        return fault, seed, int(inputs["num_inference_steps"])

    def _refuse(fault: str | None, steps: int) -> int | None:
        """After the queue hold: refuse the job for a quota fault; else the step at which a
        midway fault strikes (None: none does)."""
        if fault == "quota":
            raise gr.Error(QUOTA_MESSAGE, title=QUOTA_TITLE)
        if fault == "quota_wait":
            raise gr.Error(config.quota_wait_message(), title=QUOTA_TITLE)
        return max(1, steps // 2) if fault in _MIDWAY_FAULTS else None

    def _strike(fault: str | None) -> None:
        """Fail halfway through the run, the way the named fault does."""
        if fault == "error":
            raise gr.Error(ERROR_MESSAGE)
        if fault == "crash":
            raise RuntimeError(CRASH_MESSAGE)
        if fault == "die":
            if not config.allow_die:
                raise RuntimeError("fault 'die' refused: allow_die is off (in-process server)")
            # Flush what we can so a parent reading our output sees why we vanished.
            print("stand-in: fault 'die': exiting mid-run", file=sys.stderr, flush=True)
            shutil.rmtree(images_dir, ignore_errors=True)  # os._exit skips all cleanup
            os._exit(3)

    def _picture(inputs: dict[str, Any], seed: int) -> tuple[Any, ...]:
        """What the picture depends on: the arguments of ``paint_image`` and ``_digest``."""
        names = ("width", "height", "guidance_scale")
        return (inputs["prompt"], inputs["negative_prompt"], seed, *(inputs[n] for n in names))

    def _paint(inputs: dict[str, Any], seed: int) -> Image.Image:
        return paint_image(*_picture(inputs, seed))

    def _preview_file(final: Image.Image, noise: Image.Image, fraction: float) -> str:
        return save_webp(paint_preview(final, noise, fraction), images_dir)

    def _final(inputs: dict[str, Any], seed: int, painted: Image.Image | None = None) -> str:
        """The final image's file: from the stock in remote-compute mode, else painted now."""
        if config.premade:
            return stock.path(inputs["width"], inputs["height"], seed)
        return save_webp(painted or _paint(inputs, seed), images_dir)

    @_with_space_parameters
    def infer(*args: Any) -> tuple[str | None, int]:
        """Generate an image (stand-in: returns once, like the official Space)."""
        inputs, request = _arguments(args)
        # If the client cancels a returning job, Gradio cancels the asyncio task awaiting
        # this worker thread, but the thread itself runs on to the end (a sync function cannot
        # be interrupted) and its result is thrown away: it counts as finished, not cancelled.
        with config.job_outcome(request, inputs):
            fault, seed_used, steps = _begin(inputs)
            _pause(config.queue_hold)
            strike_at = _refuse(fault, steps)
            # Like diffusers' `progress_bar(total=...)`; Gradio's tqdm patch turns each
            # update() into a progress_data status (index i of n, unit "steps").
            with tqdm.tqdm(total=steps) as bar:
                for i in range(1, steps + 1):
                    _pause(config.seconds_per_step)
                    bar.update(1)
                    if i == strike_at:
                        _strike(fault)
            result = None if fault == "no_image" else _final(inputs, seed_used)
        return result, seed_used

    @_with_space_parameters
    async def infer_previews(*args: Any) -> AsyncIterator[tuple[str | None, int]]:
        """Generate an image, yielding preview frames before the final one (stand-in).

        Async, so that a cancel always ends it: Gradio cancels the task running it (at its
        current await) or closes it (at its current yield). A sync generator cancelled before
        its first yield would be left suspended until garbage collection, neither finished
        nor cancelled. Painting runs in worker threads, off the server's event loop."""
        inputs, request = _arguments(args)
        with config.job_outcome(request, inputs):
            fault, seed_used, steps = _begin(inputs)
            await _pause_async(config.queue_hold)
            strike_at = _refuse(fault, steps)
            previews = _preview_steps(steps, config.preview_every)
            final = await asyncio.to_thread(_paint, inputs, seed_used)
            size = int(inputs["width"]), int(inputs["height"])
            noise = _noise(_digest(*_picture(inputs, seed_used)), *size)
            with tqdm.tqdm(total=steps) as bar:
                for i in range(1, steps + 1):
                    await _pause_async(config.seconds_per_step)
                    bar.update(1)
                    if i in previews:
                        fraction = i / (steps + 1)
                        frame = await asyncio.to_thread(_preview_file, final, noise, fraction)
                        yield frame, seed_used
                    if i == strike_at:
                        _strike(fault)
            last = None
            if fault != "no_image":
                last = await asyncio.to_thread(_final, inputs, seed_used, final)
            yield last, seed_used

    with gr.Blocks(title="Stable Diffusion 3.5 Large (stand-in)") as demo:
        with gr.Column(elem_id="col-container"):
            gr.Markdown(
                "# Stable Diffusion 3.5 Large (8B) — local stand-in\n"
                "Paints deterministic test images; no model, no network."
            )
            with gr.Row():
                prompt = gr.Text(
                    label="Prompt",
                    show_label=False,
                    max_lines=1,
                    placeholder="Enter your prompt",
                    container=False,
                )
                run_button = gr.Button("Run", scale=0, variant="primary")
            result = gr.Image(label="Result", show_label=False)
            with gr.Accordion("Advanced Settings", open=False):
                negative_prompt = gr.Text(
                    label="Negative prompt",
                    max_lines=1,
                    placeholder="Enter a negative prompt",
                    visible=False,
                )
                seed = gr.Slider(label="Seed", minimum=0, maximum=MAX_SEED, step=1, value=0)
                randomize_seed = gr.Checkbox(label="Randomize seed", value=True)
                with gr.Row():
                    width = gr.Slider(
                        label="Width",
                        minimum=MIN_IMAGE_SIZE,
                        maximum=MAX_IMAGE_SIZE,
                        step=32,
                        value=1024,
                    )
                    height = gr.Slider(
                        label="Height",
                        minimum=MIN_IMAGE_SIZE,
                        maximum=MAX_IMAGE_SIZE,
                        step=32,
                        value=1024,
                    )
                with gr.Row():
                    guidance_scale = gr.Slider(
                        label="Guidance scale", minimum=0.0, maximum=7.5, step=0.1, value=4.5
                    )
                    num_inference_steps = gr.Slider(
                        label="Number of inference steps", minimum=1, maximum=50, step=1, value=40
                    )
        gr.on(
            triggers=[run_button.click, prompt.submit],
            fn=infer_previews if config.previews else infer,
            inputs=[
                prompt,
                negative_prompt,
                seed,
                randomize_seed,
                width,
                height,
                guidance_scale,
                num_inference_steps,
            ],
            outputs=[result, seed],
            api_name=config.api_name,
        )
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue_size)
    if owns_dir:
        weakref.finalize(demo, shutil.rmtree, images_dir, ignore_errors=True)
    return demo


# ----------------------------------------------------------------------------------------
# Serving


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandinServer:
    """The stand-in served on 127.0.0.1 in this process's threads. A context manager.

    Several can run at once (each gets its own port); ``config`` may be changed while running.
    """

    def __init__(self, config: StandinConfig | None = None, port: int | None = None) -> None:
        self.config = config if config is not None else StandinConfig()
        self.port = port
        self.demo: gr.Blocks | None = None
        self._url: str | None = None
        self._stopping = threading.Event()
        self._images_dir: str | None = None

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``http://127.0.0.1:54321/``."""
        if self._url is None:
            raise RuntimeError("StandinServer is not running; call start() first")
        return self._url

    def start(self, timeout: float = 30.0) -> "StandinServer":
        """Launch and return once the server answers HTTP."""
        if self.demo is not None:
            return self
        self._stopping = threading.Event()
        self._images_dir = tempfile.mkdtemp(prefix="sd35-standin-")
        demo = build_standin(self.config, self._stopping, self._images_dir)
        # A port picked by the OS may be taken again before uvicorn binds it: retry a few.
        attempts = 1 if self.port is not None else 5
        for attempt in range(attempts):
            port = self.port if self.port is not None else _free_port()
            try:
                demo.launch(
                    server_name="127.0.0.1",
                    server_port=port,
                    prevent_thread_lock=True,
                    quiet=True,
                    share=False,
                    show_error=self.config.show_error,
                    ssr_mode=False,
                    mcp_server=False,
                    inbrowser=False,
                )
                break
            except OSError:
                if attempt == attempts - 1:
                    raise
        self.demo = demo
        self.port = port
        server = getattr(demo, "server", None)
        if server is not None:
            # Gradio's SSE streams only notice a stopped queue every 10 s, and uvicorn waits
            # for open streams forever by default: cut them off after a moment instead.
            server.config.timeout_graceful_shutdown = 0.5
        self._url = f"http://127.0.0.1:{port}/"
        self._wait_until_up(timeout)
        return self

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # Loopback only: never let an environment proxy see these requests.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            try:
                with opener.open(f"{self.url}config", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"stand-in did not answer at {self._url} in {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Close the server and free its port. Jobs still running are abandoned."""
        demo, self.demo = self.demo, None
        # Running jobs give up at their next step; otherwise closing waits for their threads.
        self._stopping.set()
        if demo is not None:
            demo.close(verbose=False)
        if self._images_dir is not None:
            shutil.rmtree(self._images_dir, ignore_errors=True)
            self._images_dir = None
        self._url = None

    def __enter__(self) -> "StandinServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------
# CLI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sd35.standin",
        description="Serve a local stand-in of the SD 3.5 Large Space on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--seconds-per-step", type=float, default=0.02)
    parser.add_argument("--previews", action="store_true", help="stream preview frames")
    parser.add_argument("--preview-every", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--max-queue-size", type=int, default=None)
    parser.add_argument("--queue-hold", type=float, default=0.0)
    parser.add_argument("--fault", choices=FAULTS, default=None)
    parser.add_argument("--fault-once", choices=FAULTS, default=None)
    parser.add_argument("--quota-lift-calls", type=int, default=None)
    parser.add_argument("--quota-lift-seconds", type=float, default=None)
    parser.add_argument("--quota-retry-in", default="0:09:48", metavar="H:MM:SS")
    parser.add_argument("--api-name", default="infer")
    parser.add_argument("--show-error", action="store_true")
    parser.add_argument(
        "--premade",
        action="store_true",
        help="remote-compute mode: final images made once per size, a job is only a sleep",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted. The first line on stdout is the URL (for parent processes)."""
    args = _parse_args(argv)
    config = StandinConfig(
        seconds_per_step=args.seconds_per_step,
        previews=args.previews,
        preview_every=args.preview_every,
        concurrency=args.concurrency,
        max_queue_size=args.max_queue_size,
        api_name=args.api_name,
        queue_hold=args.queue_hold,
        fault=args.fault,
        fault_once=args.fault_once,
        quota_lift_calls=args.quota_lift_calls,
        quota_lift_seconds=args.quota_lift_seconds,
        quota_retry_in=args.quota_retry_in,
        show_error=args.show_error,
        premade=args.premade,
        allow_die=True,  # a dedicated process: `die` may really kill it
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    # SIGTERM (e.g. Popen.terminate()) shuts down as cleanly as Ctrl+C.
    signal.signal(signal.SIGTERM, _on_signal)
    server = StandinServer(config, port=args.port or None).start()
    try:
        print(server.url, flush=True)
        print(
            f"stand-in Space serving /{config.api_name} at {server.url} (Ctrl+C to stop)",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
