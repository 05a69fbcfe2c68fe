"""What the OpenAI-compatible API adds: time to the final image through the studio's
``/v1/images/generations`` (``b64_json``) against a bare ``gradio_client`` call to the same
stand-in Space, as a ratio of medians.

    python3 -m bench.api_overhead              # 10 runs each, 10 steps of 20 ms
    python3 -m bench.api_overhead --runs 20 --steps 20 --seconds-per-step 0.01 --json

The stand-in (with previews) and the studio (``app.py --api``) each run in a process of their
own, so the clients measured here share no interpreter with the servers. Both paths make the
same request (same prompt, size, steps; a random seed each run), in alternating runs, and wait
for the final image: the bare call downloads the Space's WebP; the API call also saves the PNG
with metadata in the gallery and returns it base64-encoded, which is the overhead being
measured. One warm-up run each is not counted (it connects and reads the Space's schema).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gradio_client import Client

from bench.common import ROOT
from harness import free_port, wait_for_http

PROMPT = "an api overhead benchmark"
SIZE = 512


def start_standin(seconds_per_step: float, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sd35.standin",
            "--previews",
            "--preview-every",
            "2",
            "--seconds-per-step",
            str(seconds_per_step),
            "--concurrency",
            "2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise RuntimeError(f"the stand-in did not start (said {url!r})")
    return process, url


def start_studio(space: str, folder: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--api",
            "--space",
            space,
            "--port",
            str(port),
            "--output-dir",
            str(Path(folder) / "outputs"),
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url, timeout=60, process=None)
    return process, url


def measure(space: str, studio: str, runs: int, steps: int) -> tuple[list[float], list[float]]:
    """Seconds to the final image, bare and through the API, in alternating runs (so that a
    change of load on the machine touches both alike). The bare path is a ``gradio_client``
    call to the Space's ``/infer`` (result file downloaded); the API path is the studio's
    OpenAI route with ``b64_json`` (saved in the gallery, PNG returned)."""
    client = Client(space, verbose=False, download_files=tempfile.mkdtemp(prefix="sd35-bench-"))
    arguments = (PROMPT, "", 0, True, SIZE, SIZE, 4.5, steps)
    body = {
        "model": "sd-3.5",
        "prompt": PROMPT,
        "size": f"{SIZE}x{SIZE}",
        "response_format": "b64_json",
        "num_inference_steps": steps,
    }
    bare: list[float] = []
    api: list[float] = []
    try:
        with httpx.Client(base_url=studio, timeout=120) as http:
            for run in range(runs + 1):  # run 0 is the warm-up of each path
                began = time.perf_counter()
                image, _seed = client.predict(*arguments, api_name="/infer")
                elapsed = time.perf_counter() - began
                assert Path(image).is_file()
                if run:
                    bare.append(elapsed)
                began = time.perf_counter()
                response = http.post("v1/images/generations", json=body)
                elapsed = time.perf_counter() - began
                response.raise_for_status()
                assert response.json()["data"][0]["b64_json"]
                if run:
                    api.append(elapsed)
    finally:
        client.close()
    return bare, api


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seconds-per-step", type=float, default=0.02)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    # Loopback only: no proxy, no token, Hugging Face offline, no analytics, here and below.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)
    os.environ.pop("all_proxy", None)
    os.environ.pop("HF_TOKEN", None)
    os.environ.update(
        {
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    env = dict(os.environ)
    standin, space = start_standin(args.seconds_per_step, env)
    studio = None
    try:
        with tempfile.TemporaryDirectory(prefix="sd35-bench-") as folder:
            studio, studio_url = start_studio(space, folder, env)
            bare, api = measure(space, studio_url, args.runs, args.steps)
            studio.terminate()
            studio.wait(timeout=30)
            studio = None
    finally:
        for process in (studio, standin):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    bare_median, api_median = statistics.median(bare), statistics.median(api)
    result = {
        "benchmark": "api_overhead",
        "runs": args.runs,
        "steps": args.steps,
        "seconds_per_step": args.seconds_per_step,
        "bare_gradio_client_median_s": round(bare_median, 4),
        "openai_api_b64_median_s": round(api_median, 4),
        "ratio": round(api_median / bare_median, 3),
        "overhead_ms": round((api_median - bare_median) * 1000, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print("| path | median s to final image |")
        print("|---|---|")
        print(f"| bare gradio_client /infer | {bare_median:.3f} |")
        print(f"| OpenAI route, b64_json | {api_median:.3f} |")
        print(
            f"ratio (API / bare): {result['ratio']:.2f}  "
            f"(overhead {result['overhead_ms']:.0f} ms; {args.runs} runs, "
            f"{args.steps} steps × {args.seconds_per_step * 1000:.0f} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
