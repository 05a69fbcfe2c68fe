"""How the gallery scales: open, first page and memory with 1,000 and 10,000 images.

    python bench/gallery_scale.py            # 1,000 and 10,000
    python bench/gallery_scale.py 500 2000   # other sizes

Each size runs in a fresh process (so resident memory is not inherited). The PNGs are small
(64x64) but real, with full metadata, spread over 30 day folders; they are written directly
(not fsynced) and then indexed by the store's own recovery path, which is the bulk path: a
first open finds PNGs without index rows and indexes them in one transaction.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from sd35.gallery import SQLiteGalleryStore
from sd35.metadata import ImageMetadata, write_png

WORDS = ["cat", "dog", "lighthouse", "forest", "neon", "city", "portrait", "river", "castle", "bot"]


def rss_mib() -> float:
    """Resident memory of this process, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fill(root: Path, count: int) -> None:
    start = datetime.now() - timedelta(days=30)
    step = timedelta(days=30) / count
    for i in range(count):
        stamp = start + step * i
        image_id = f"{stamp:%Y%m%d-%H%M%S-%f}-{i:06x}"
        day = root / f"{stamp:%Y-%m-%d}"
        day.mkdir(parents=True, exist_ok=True)
        prompt = f"{WORDS[i % 10]} number {i}, {WORDS[(i * 7) % 10]} in the rain"
        meta = ImageMetadata(prompt=prompt, seed=i, extra={"user": ["alice", "bob"][i % 2]})
        picture = Image.new("RGB", (64, 64), (i % 256, (i * 3) % 256, (i * 7) % 256))
        write_png(picture, day / f"{image_id}.png", meta, durable=False)


def timed(action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = action()
    return result, (time.perf_counter() - started) * 1000


def child(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "gallery"
        _, fill_ms = timed(lambda: fill(root, count))
        rss_before = rss_mib()
        store, first_open_ms = timed(lambda: SQLiteGalleryStore(root))
        assert store.count() == count, store.count()
        store.close()
        store, open_ms = timed(lambda: SQLiteGalleryStore(root))
        _, reconcile_ms = timed(store.reconcile)
        page, first_page_ms = timed(lambda: store.list(limit=48))
        assert len(page.items) == 48 and page.total == count
        _, deep_page_ms = timed(lambda: store.list(offset=count - 48, limit=48))
        _, user_page_ms = timed(lambda: store.list(user="alice", limit=48))
        found, search_ms = timed(lambda: store.list(search="LIGHTHOUSE number 1", limit=48))
        assert found.total > 0
        _, history_ms = timed(lambda: store.prompt_history(50))
        rss_after = rss_mib()
        saves = 20
        _, save_ms = timed(
            lambda: [
                store.save(Image.new("RGB", (64, 64)), ImageMetadata("x")) for _ in range(saves)
            ]
        )
        store.close()
        return {
            "images": count,
            "fill_s": fill_ms / 1000,
            "first_open_ms": first_open_ms,
            "open_ms": open_ms,
            "reconcile_ms": reconcile_ms,
            "first_page_ms": first_page_ms,
            "last_page_ms": deep_page_ms,
            "user_page_ms": user_page_ms,
            "search_ms": search_ms,
            "history_ms": history_ms,
            "save_ms": save_ms / saves,
            "rss_before_mib": rss_before,
            "rss_after_mib": rss_after,
        }


ROWS = [
    ("first open (indexes every PNG)", "first_open_ms", "ms"),
    ("open, index fine", "open_ms", "ms"),
    ("  reconcile() alone (listing compare)", "reconcile_ms", "ms"),
    ("list: first page (48)", "first_page_ms", "ms"),
    ("list: last page", "last_page_ms", "ms"),
    ("list: one user's first page", "user_page_ms", "ms"),
    ("search (LIKE, folded)", "search_ms", "ms"),
    ("prompt history (50)", "history_ms", "ms"),
    ("save() 64x64, fsynced, each", "save_ms", "ms"),
    ("VmRSS before open", "rss_before_mib", "MiB"),
    ("VmRSS after open + list", "rss_after_mib", "MiB"),
]


def main(sizes: list[int]) -> None:
    results = []
    for size in sizes:
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(size)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    header = f"{'images':38}" + "".join(f"{r['images']:>14,}" for r in results)
    print(header)
    print("-" * len(header))
    for label, key, unit in [*ROWS, ("(writing the PNGs, not fsynced)", "fill_s", "s")]:
        print((f"{label:38}" + "".join(f"{r[key]:>10.1f} {unit:<3}" for r in results)).rstrip())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]))))
    else:
        main([int(a) for a in sys.argv[1:]] or [1000, 10_000])
