"""``python -m sd35 generate`` in a subprocess against the stand-in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from harness import closed_port
from sd35.metadata import read_metadata


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
    # One progress line (not one per step), with a bar; then the result.
    steps = re.findall(r"^step [0-6]/6 \[[#.]{20}\]$", done.stderr, re.M)
    assert len(steps) == 1, done.stderr
    assert "seed 42" in done.stderr and "preview" not in done.stderr
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


def test_quiet_verbose_and_demo(space, tmp_path) -> None:
    common = ("--space", space.url, "--steps", "4", "--out", str(tmp_path / "out"))
    quiet = run_cli("a fern", *common, "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert Path(quiet.stdout.strip()).is_file()
    space.config.seconds_per_step = 0.1  # slow enough that every step is reported
    verbose = run_cli("a fern", *common, "--verbose", cwd=tmp_path)
    assert verbose.returncode == 0
    assert len(re.findall(r"^step \d/4 ", verbose.stderr, re.M)) >= 3, verbose.stderr
    # --demo needs no Space at all: a stand-in in the same process paints a test pattern.
    demo = run_cli("a fern", "--demo", "--steps", "2", "--out", str(tmp_path / "d"), cwd=tmp_path)
    assert demo.returncode == 0 and "stand-in" in demo.stderr
    assert (tmp_path / "d") in Path(demo.stdout.strip()).parents


def test_help_offers_the_aspect_ratios_that_fit() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "sd35", "generate", "--help"],
        capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip
    assert "16:9" in helped.stdout and "21:9" not in helped.stdout
