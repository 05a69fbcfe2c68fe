"""``python -m sd35 generate`` in a subprocess against the stand-in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from sd35.metadata import read_metadata
from tests.loopback import closed_port


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sd35", "generate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )


def test_generate_prints_progress_and_the_saved_path(space, tmp_path) -> None:
    done = run_cli(
        "a quiet harbour",
        "--space", space.url,
        "--aspect-ratio", "3:2",
        "--seed", "42",
        "--steps", "6",
        "--out", str(tmp_path / "out"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    saved = Path(done.stdout.strip())
    assert saved.is_file() and (tmp_path / "out") in saved.parents
    with Image.open(saved) as image:
        assert image.size == (960, 640)
    assert re.search(r"^step [1-6]/6$", done.stderr, re.M) and "seed 42" in done.stderr
    meta = read_metadata(saved)
    assert meta is not None and meta.seed == 42 and meta.num_inference_steps == 6


def test_exit_codes_distinguish_bad_input_from_remote_failure(space, tmp_path) -> None:
    bad = run_cli("x", "--space", space.url, "--aspect-ratio", "21:9", cwd=tmp_path)
    assert bad.returncode == 2 and "nearest ratio that fits is 2:1" in bad.stderr
    down = run_cli("x", "--space", f"http://127.0.0.1:{closed_port()}/", cwd=tmp_path)
    assert down.returncode == 3 and "Could not reach the Space" in down.stderr
    assert "Traceback" not in down.stderr
    space.config.fault_once = "quota"
    quota = run_cli("x", "--space", space.url, "--steps", "2", cwd=tmp_path)
    assert quota.returncode == 4 and "GPU quota" in quota.stderr
