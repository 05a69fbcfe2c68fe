"""Backends: what failover costs beyond the failing call itself, and the Inference backend's
time to a saved PNG beside a bare ``InferenceClient.text_to_image`` on the same stand-in.

Everything runs in this process on 127.0.0.1: Inference API stand-ins (``sd35.inference_standin``)
in threads, the gallery in a temporary folder.

    python3 -m bench --only backends [--quick]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Budget, median, progress
from bench.report import Section, Table, Target, fmt_ms, fmt_ratio

#: The stand-in's "GPU" time per image: a one-second job, as the queue's targets assume.
SECONDS_PER_IMAGE = 1.0


def _allow_loopback_calls() -> None:
    # The suite keeps huggingface_hub offline; these calls go to the stand-ins on 127.0.0.1.
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = False


def _timed(action: Any) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _drain(backend: Any, request: Any) -> Any:
    async def run() -> Any:
        last = None
        async for event in backend.generate(request):
            last = event
        return last

    return asyncio.run(run())


def failover_cost(runs: int, section: Section) -> None:
    """[failing, working], direct and through the queue. "Added" is measured on the wire: from
    the moment the failing stand-in has sent its 503 to the moment the working one receives
    the request, i.e. everything failover does beyond the failing call itself."""
    from sd35.backends import build_backends, choose_backends
    from sd35.backends.direct import FailoverBackend
    from sd35.backends.pins import JobPins
    from sd35.gallery import SQLiteGalleryStore
    from sd35.inference_standin import InferenceStandin, InferenceStandinConfig
    from sd35.jobs import DONE, JobStore
    from sd35.params import GenerationRequest
    from sd35.scheduler import BackendState, RetryPolicy, Scheduler
    from sd35.space_client import SpaceClient
    from sd35.studio import Studio

    request = GenerationRequest("a benchmark", width=512, height=512, num_inference_steps=4)
    with (
        InferenceStandin(InferenceStandinConfig(fault="unavailable")) as failing,
        InferenceStandin(InferenceStandinConfig(seconds=0.2)) as working,
        tempfile.TemporaryDirectory(prefix="sd35-bench-backends-") as folder,
    ):
        specs = [(f"endpoint:{failing.url}", False), (f"endpoint:{working.url}", False)]
        bad, good = build_backends(choose_backends(specs, env={}), token=None)

        def gap() -> float:
            return working.config.arrived[-1] - failing.config.answered[-1]

        direct: list[float] = []
        for index in Budget(runs, 60):
            progress(f"backends: direct failover run {index + 1}/{runs}")
            states = [BackendState(bad), BackendState(good)]  # nothing paused yet
            _drain(FailoverBackend(lambda states=states: states), request)
            direct.append(gap())

        root = Path(folder)
        gallery = SQLiteGalleryStore(root / "out")
        studio = Studio(SpaceClient("http://127.0.0.1:9/", token=""), gallery)
        store = JobStore.for_gallery(studio.store)
        runner = lambda job, backend: studio.run(job.request, backend=backend, job_id=job.id)  # noqa: E731
        scheduler = Scheduler(
            store, [bad, good], runner, policy=RetryPolicy(), pins=JobPins(store.path)
        ).start()
        queued: list[float] = []
        try:
            for index in Budget(runs, 60):
                progress(f"backends: queue failover run {index + 1}/{runs}")
                scheduler.try_now()  # the failing one is tried first again
                (job,) = scheduler.submit([request], owner=None, source="api")
                while scheduler.store.get(job.id).state != DONE:
                    time.sleep(0.005)
                queued.append(gap())
        finally:
            scheduler.stop()
            store.close()

    table = Table(["path", "failing answer → next backend asked (median)", "max"])
    table.add("direct (page, APIs, MCP, CLI)", fmt_ms(median(direct)), fmt_ms(max(direct)))
    table.add("queue (scheduler)", fmt_ms(median(queued)), fmt_ms(max(queued)))
    section.tables.append(table)
    worst = max(median(direct), median(queued))
    section.targets.append(
        Target(
            "backends: failover",
            "failover adds ≤ 100 ms beyond the failing call",
            "≤ 100 ms",
            fmt_ms(worst),
            worst <= 0.100,
        )
    )


def inference_to_png(runs: int, section: Section) -> None:
    """A bare ``text_to_image`` (and the same plus ``image.save``) beside the backend's path
    to a PNG in the gallery, 1024×1024, on one stand-in."""
    from huggingface_hub import InferenceClient

    from sd35.backends import InferenceBackend, parse_spec
    from sd35.gallery import SQLiteGalleryStore
    from sd35.inference_standin import InferenceStandin, InferenceStandinConfig
    from sd35.params import GenerationRequest
    from sd35.space_client import SpaceClient
    from sd35.studio import Studio

    request = GenerationRequest("a lighthouse", seed=7, randomize_seed=False)
    with (
        InferenceStandin(InferenceStandinConfig(seconds=SECONDS_PER_IMAGE)) as standin,
        tempfile.TemporaryDirectory(prefix="sd35-bench-inference-") as folder,
    ):
        root = Path(folder)
        bare_client = InferenceClient(model=standin.url)
        backend = InferenceBackend(parse_spec(f"endpoint:{standin.url}"), download_dir=root / "dl")
        studio = Studio(SpaceClient(standin.url, token=""), SQLiteGalleryStore(root / "gallery"))

        def bare(save: bool) -> None:
            image = bare_client.text_to_image(
                request.prompt, width=1024, height=1024, guidance_scale=4.5,
                num_inference_steps=40, seed=7,
            )  # fmt: skip
            if save:
                image.save(root / "bare.png")

        def ours() -> None:
            result = _drain(backend, request)
            studio.save(result)

        times: dict[str, list[float]] = {"bare": [], "bare+save": [], "ours": []}
        for index in Budget(runs, 120):
            progress(f"backends: inference to PNG run {index + 1}/{runs}")
            times["bare"].append(_timed(lambda: bare(False)))
            times["bare+save"].append(_timed(lambda: bare(True)))
            times["ours"].append(_timed(ours))
    table = Table(["path (1024×1024, 1 s stand-in)", "median", "vs bare call"])
    base = median(times["bare"])
    for label, name in (
        ("bare `InferenceClient.text_to_image`", "bare"),
        ("bare call + `image.save` PNG", "bare+save"),
        ("`InferenceBackend` → PNG with metadata in the gallery", "ours"),
    ):
        table.add(label, fmt_ms(median(times[name])), fmt_ratio(median(times[name]) / base))
    section.tables.append(table)
    ratio = median(times["ours"]) / base
    section.targets.append(
        Target(
            "backends: inference",
            "Inference backend to saved PNG vs bare `text_to_image`",
            "≤ 1.05×",
            fmt_ratio(ratio),
            ratio <= 1.05,
        )
    )


def save_step(runs: int, section: Section) -> None:
    """The save step alone, in this process: a provider's 1024×1024 PNG into the gallery with
    our chunks spliced in (what ``InferenceBackend`` results take), beside decoding it and
    encoding it again (what they took before), for the stand-in's picture and a photo-like
    one (the stand-in's flat painting compresses to a few dozen KiB; real pictures do not)."""
    import io

    from PIL import Image

    from sd35.gallery import SQLiteGalleryStore
    from sd35.image_files import write_image
    from sd35.metadata import ImageMetadata
    from sd35.standin import paint_image, textured_image

    meta = ImageMetadata("a lighthouse", seed=7)
    table = Table(["provider PNG → gallery (save step only)", "size", "spliced", "decode + encode"])
    with tempfile.TemporaryDirectory(prefix="sd35-bench-save-") as folder:
        store = SQLiteGalleryStore(Path(folder) / "gallery")
        pictures = {
            "stand-in picture": paint_image("a lighthouse", None, 7, 1024, 1024, 4.5),
            "photo-like picture": textured_image(1024, 1024, 3),
        }
        for label, picture in pictures.items():
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG", compress_level=1)
            data = buffer.getvalue()

            def reencode(data: bytes = data) -> None:
                planned = store.reserve()
                planned.path.parent.mkdir(exist_ok=True)
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
                    write_image(image, planned.path, meta)

            def splice(data: bytes = data) -> None:
                store.save_encoded(data, meta)

            spliced = [_timed(splice) for _ in Budget(runs, 20)]
            decoded = [_timed(reencode) for _ in Budget(runs, 20)]
            size = f"{len(data) / 1024:.0f} KiB"
            table.add(label, size, fmt_ms(median(spliced)), fmt_ms(median(decoded)))
        store.close()
    section.tables.append(table)


def run(quick: bool = False) -> Section:
    began = time.monotonic()
    _allow_loopback_calls()
    section = Section("Backends: failover cost, Inference backend to PNG")
    runs = 3 if quick else 9
    failover_cost(runs, section)
    inference_to_png(runs, section)
    save_step(runs, section)
    section.notes.append(
        "Failover: the first backend is an Inference API stand-in answering 503 at once, the "
        "second one paints in 0.2 s; the time is taken between the 503 leaving the first "
        "stand-in and the request reaching the second (both clocks are this process's). Each "
        "queue run resumes the failing backend first (Try now)."
    )
    section.seconds = time.monotonic() - began
    return section
