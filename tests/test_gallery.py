"""The gallery: persistence, paging, search, users, rebuild and surviving SIGKILL."""

from __future__ import annotations

import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from sd35.gallery import Page, SQLiteGalleryStore, StoredImage, new_image_id
from sd35.image_files import write_png
from sd35.metadata import ImageMetadata, read_metadata

REPO = Path(__file__).resolve().parents[1]


def image(color: int = 0, size: tuple[int, int] = (32, 24)) -> Image.Image:
    return Image.new("RGB", size, (color % 256, (color * 7) % 256, 90))


def meta(prompt: str = "a cat", **kwargs: object) -> ImageMetadata:
    return ImageMetadata(prompt=prompt, seed=int(kwargs.pop("seed", 7)), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteGalleryStore]:
    with SQLiteGalleryStore(tmp_path / "gallery") as opened:
        yield opened


def pngs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("????-??-??/*.png") if not p.name.startswith(".tmp-"))


def temps(root: Path) -> list[Path]:
    return sorted(root.rglob(".tmp-*"))


def snapshot(store: SQLiteGalleryStore) -> list[tuple[str, str | None, str, bool]]:
    page = store.list(limit=10_000)
    return [(i.id, i.user, i.meta.prompt, i.starred) for i in page.items]


# --- basics ------------------------------------------------------------------------------------


def test_save_writes_png_thumbnail_and_row(store: SQLiteGalleryStore) -> None:
    item = store.save(image(size=(600, 300)), meta("a red fox", seed=42), user="alice")
    assert isinstance(item, StoredImage)
    assert item.path.is_absolute() and item.path.exists()
    assert item.path.parent.name == f"{item.id[:4]}-{item.id[4:6]}-{item.id[6:8]}"
    assert item.path.name == f"{item.id}.png"
    assert item.user == "alice" and item.starred is False
    with Image.open(item.thumbnail_path) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == (256, 128)
    on_disk = read_metadata(item.path)
    assert on_disk is not None
    assert on_disk.extra["user"] == "alice"  # ownership survives in the PNG itself
    assert on_disk == item.meta
    assert store.get(item.id) == item
    assert store.count() == 1


def test_ids_sort_in_creation_order() -> None:
    ids = [new_image_id()[0] for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_list_is_newest_first_and_pages(store: SQLiteGalleryStore) -> None:
    saved = [store.save(image(i), meta(f"prompt {i}")) for i in range(7)]
    newest_first = [s.id for s in reversed(saved)]
    first = store.list(limit=3)
    assert isinstance(first, Page)
    assert [i.id for i in first.items] == newest_first[:3]
    assert (first.total, first.offset, first.limit, first.has_more) == (7, 0, 3, True)
    second = store.list(offset=3, limit=3)
    assert [i.id for i in second.items] == newest_first[3:6]
    last = store.list(offset=6, limit=3)
    assert [i.id for i in last.items] == newest_first[6:]
    assert last.has_more is False
    assert store.list(offset=50).items == []
    assert store.list().total == 7


def test_search_is_case_insensitive_and_escapes_wildcards(store: SQLiteGalleryStore) -> None:
    prompts = [
        "A Red CAT on a mat",
        "blue dog",
        "100% pure gold",
        "100 pure silver",
        "snake_case words",
        "snakeXcase words",
        "Кот в сапогах",
        "back\\slash",
    ]
    for i, prompt in enumerate(prompts):
        store.save(image(i), meta(prompt))

    def found(query: str) -> set[str]:
        return {i.meta.prompt for i in store.list(search=query).items}

    assert found("cat") == {"A Red CAT on a mat"}
    assert found("RED cat") == {"A Red CAT on a mat"}
    assert found("%") == {"100% pure gold"}
    assert found("0% p") == {"100% pure gold"}
    assert found("_") == {"snake_case words"}
    assert found("e_c") == {"snake_case words"}
    assert found("кот") == {"Кот в сапогах"}  # Unicode case folding, not just ASCII
    assert found("\\") == {"back\\slash"}
    assert found("  ") == set(prompts)  # blank search: everything
    assert store.list(search="pure", limit=1).total == 2


def test_restart_keeps_everything(tmp_path: Path) -> None:
    root = tmp_path / "g"
    with SQLiteGalleryStore(root) as first:
        a = first.save(image(1), meta("one"), user="alice")
        first.save(image(2), meta("two"), user="bob")
        first.set_starred(a.id, True)
        before = snapshot(first)
    with SQLiteGalleryStore(root) as second:
        assert snapshot(second) == before
        assert second.last_open.rebuilt is False
        assert second.last_open.indexed == 0
        assert second.get(a.id) is not None and second.get(a.id).starred  # type: ignore[union-attr]


def test_delete_removes_png_thumbnail_and_row(store: SQLiteGalleryStore) -> None:
    keep = store.save(image(1), meta("keep"))
    gone = store.save(image(2), meta("gone"), user="alice")
    assert store.delete(gone.id, user="bob") is False  # not bob's
    assert gone.path.exists()
    assert store.delete(gone.id, user="alice") is True
    assert not gone.path.exists()
    assert not gone.thumbnail_path.exists()
    assert store.get(gone.id) is None
    assert store.delete(gone.id) is False
    assert [i.id for i in store.list().items] == [keep.id]


def test_stars(store: SQLiteGalleryStore) -> None:
    a = store.save(image(1), meta("a"), user="alice")
    b = store.save(image(2), meta("b"), user="alice")
    assert store.set_starred(a.id, True) is True
    assert store.set_starred(b.id, True, user="bob") is False  # someone else's
    assert [i.id for i in store.list(starred=True).items] == [a.id]
    assert [i.id for i in store.list(starred=False).items] == [b.id]
    assert store.set_starred(a.id, False, user="alice") is True
    assert store.list(starred=True).total == 0
    assert store.set_starred("no-such-id", True) is False


def test_users_see_only_their_own(store: SQLiteGalleryStore) -> None:
    alice = [store.save(image(i), meta(f"alice {i}"), user="alice") for i in range(3)]
    bob = [store.save(image(i), meta(f"bob {i}"), user="bob") for i in range(2)]
    nobody = store.save(image(9), meta("local"))
    assert {i.id for i in store.list(user="alice").items} == {i.id for i in alice}
    assert {i.id for i in store.list(user="bob").items} == {i.id for i in bob}
    assert store.list().total == 6  # None: every user (single-user local server)
    assert (store.count(), store.count("alice"), store.count("bob"), store.count("eve")) == (
        6,
        3,
        2,
        0,
    )
    assert store.get(alice[0].id, user="bob") is None
    assert store.get(alice[0].id, user="alice") is not None
    assert store.get(nobody.id, user="alice") is None
    assert store.list(user="bob", search="alice").total == 0
    assert store.prompt_history(user="bob") == ["bob 1", "bob 0"]
    zipped = store.write_zip([a.id for a in alice] + [bob[0].id], user="bob")
    with zipfile.ZipFile(zipped) as archive:
        assert archive.namelist() == [bob[0].path.name]


def test_prompt_history_is_distinct_and_newest_first(store: SQLiteGalleryStore) -> None:
    for prompt in ["a", "b", "a", "c", "", "b"]:
        store.save(image(), meta(prompt))
    assert store.prompt_history() == ["b", "c", "a"]
    assert store.prompt_history(limit=2) == ["b", "c"]


def test_zip_holds_the_originals_byte_for_byte(store: SQLiteGalleryStore, tmp_path: Path) -> None:
    items = [store.save(image(i, (64, 64)), meta(f"z{i}")) for i in range(3)]
    dest = store.write_zip([i.id for i in items] + [items[0].id, "missing"], tmp_path / "x.zip")
    assert dest == tmp_path / "x.zip"
    with zipfile.ZipFile(dest) as archive:
        assert sorted(archive.namelist()) == sorted(i.path.name for i in items)
        for item in items:
            assert archive.read(item.path.name) == item.path.read_bytes()
    assert not temps(tmp_path)
    default = store.write_zip([items[0].id])
    try:
        with zipfile.ZipFile(default) as archive:
            assert archive.namelist() == [items[0].path.name]
    finally:
        default.unlink()


def test_missing_thumbnail_is_made_again(store: SQLiteGalleryStore) -> None:
    item = store.save(image(size=(300, 600)), meta())
    item.thumbnail_path.unlink()
    path = store.ensure_thumbnail(item.id)
    assert path == item.thumbnail_path and path.exists()
    with Image.open(path) as thumb:
        assert thumb.size == (128, 256)
    assert store.ensure_thumbnail(item.id, user="bob") is None


def test_listing_a_page_reads_only_the_index(
    store: SQLiteGalleryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's first view (a page of rows, their thumbnails) opens no PNG and makes no
    thumbnail that exists already, however many images the gallery holds."""
    for n in range(5):
        store.save(image(n), meta(f"picture {n}"), thumbnail=n != 0)
    opened: list[object] = []
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args))
    page = store.list(limit=4)
    assert [i.meta.prompt for i in page.items] == [f"picture {n}" for n in (4, 3, 2, 1)]
    assert page.total == 5 and page.has_more
    assert all(store.ensure_thumbnail(i.id) == i.thumbnail_path for i in page.items)
    assert store.list(search="PICTURE 3").total == 1 and store.count() == 5
    assert opened == []
    monkeypatch.undo()  # the image without a thumbnail gets one from its PNG, once
    (last,) = store.list(offset=4, limit=4).items
    assert not last.thumbnail_path.exists()
    assert store.ensure_thumbnail(last.id) == last.thumbnail_path and last.thumbnail_path.exists()


def test_an_encoded_png_is_stored_byte_for_byte_but_its_text(store: SQLiteGalleryStore) -> None:
    """A backend's PNG keeps its image data (nothing re-encoded); the index row, owner and
    thumbnail-on-demand are as for any saved image."""
    buffer = io.BytesIO()
    image(9, size=(300, 200)).save(buffer, format="PNG", optimize=True)
    provider = buffer.getvalue()
    item = store.save_encoded(provider, meta("from a provider"), user="bob")
    saved = item.path.read_bytes()
    assert saved.endswith(provider[-12:]) and provider[33:] in saved  # all after IHDR, as sent
    assert read_metadata(item.path) == item.meta and item.meta.extra["user"] == "bob"
    assert store.get(item.id, "bob") == item and store.get(item.id, "alice") is None
    assert not item.thumbnail_path.exists()
    with Image.open(store.ensure_thumbnail(item.id)) as thumb:
        assert thumb.size == (256, 171)


def test_concurrent_threads(store: SQLiteGalleryStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                item = store.save(image(i), meta(f"thread {n} image {i}"), user=f"u{n % 2}")
                store.list(search="thread", limit=5)
                store.set_starred(item.id, i % 2 == 0)
                store.get(item.id)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count() == 60
    assert store.list(starred=True).total == 30


# --- recovery ---------------------------------------------------------------------------------


def test_rebuild_after_index_deleted(tmp_path: Path) -> None:
    root = tmp_path / "g"
    with SQLiteGalleryStore(root) as first:
        for i in range(5):
            first.save(image(i), meta(f"p{i}"), user=["alice", "bob", None][i % 3])
        before = snapshot(first)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / '.index.sqlite3'}{suffix}").unlink(missing_ok=True)
    with SQLiteGalleryStore(root) as second:
        assert second.last_open.rebuilt is True
        assert second.last_open.indexed == 5
        assert snapshot(second) == before
        assert second.count("alice") == 2


def test_rebuild_after_only_the_main_index_file_deleted(tmp_path: Path) -> None:
    root = tmp_path / "g"
    first = SQLiteGalleryStore(root)
    for i in range(3):
        first.save(image(i), meta(f"p{i}"), user="alice")
    before = snapshot(first)
    # Deleted while the store is still open: its WAL and SHM stay behind.
    (root / ".index.sqlite3").unlink()
    with SQLiteGalleryStore(root) as second:
        assert second.last_open.rebuilt is True
        assert snapshot(second) == before
        second.save(image(9), meta("after"))
        assert second.count() == 4
    first.close()


def test_rebuild_after_index_corrupted(tmp_path: Path) -> None:
    root = tmp_path / "g"
    with SQLiteGalleryStore(root) as first:
        for i in range(5):
            first.save(image(i), meta(f"p{i}"), user=["alice", "bob"][i % 2])
        before = snapshot(first)
    (root / ".index.sqlite3").write_bytes(os.urandom(4096))
    with SQLiteGalleryStore(root) as second:
        assert second.last_open.rebuilt is True
        assert snapshot(second) == before
    assert list(root.glob(".index.sqlite3.broken-*"))  # kept aside for inspection


def test_rebuild_after_index_damaged_inside_keeps_what_it_can(tmp_path: Path) -> None:
    root = tmp_path / "g"
    with SQLiteGalleryStore(root) as first:
        items = [first.save(image(i), meta(f"p{i}")) for i in range(3)]
        first.set_starred(items[1].id, True)
        before = snapshot(first)
    conn = sqlite3.connect(root / ".index.sqlite3")
    conn.execute("PRAGMA user_version = 99")  # a schema we do not know
    conn.commit()
    conn.close()
    with SQLiteGalleryStore(root) as second:
        assert second.last_open.rebuilt is True
        assert snapshot(second) == before  # stars salvaged from the old file


def test_public_rebuild_index_keeps_stars(store: SQLiteGalleryStore) -> None:
    items = [store.save(image(i), meta(f"p{i}"), user="alice") for i in range(4)]
    store.set_starred(items[2].id, True)
    before = snapshot(store)
    assert store.rebuild_index() == 4
    assert snapshot(store) == before


def test_open_indexes_orphan_pngs_and_drops_vanished_rows(tmp_path: Path) -> None:
    root = tmp_path / "g"
    with SQLiteGalleryStore(root) as first:
        kept = first.save(image(1), meta("kept"))
        vanished = first.save(image(2), meta("vanished"))
    vanished.path.unlink()
    # A PNG whose process died before its index row: as save() leaves it.
    orphan_id, stamp = new_image_id()
    day = root / f"{stamp:%Y-%m-%d}"
    day.mkdir(exist_ok=True)
    write_png(image(3), day / f"{orphan_id}.png", meta("orphan").with_extra(user="carol"))
    # A foreign PNG without metadata, and a half-written temp file of a dead process.
    Image.new("RGB", (4, 4)).save(day / "downloaded.png")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    (day / f".tmp-{dead.stdout.strip()}-abc.png").write_bytes(b"\x89PNG half")
    # A temp file of a live writer (this process) is in flight and must be left alone.
    live = day / f".tmp-{os.getpid()}-inflight.png"
    live.write_bytes(b"\x89PNG")
    with SQLiteGalleryStore(root) as second:
        report = second.last_open
        assert (report.indexed, report.dropped, report.temp_removed) == (2, 1, 1)
        assert not vanished.thumbnail_path.exists()  # orphan thumbnail cleaned too
        ids = {i.id for i in second.list().items}
        assert ids == {kept.id, orphan_id, "downloaded"}
        assert second.get(orphan_id, user="carol") is not None
        assert second.get("downloaded").meta.prompt == ""  # type: ignore[union-attr]
    assert live.exists()


# --- SIGKILL --------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import random, sys
    from PIL import Image
    from sd35.gallery import SQLiteGalleryStore
    from sd35.metadata import ImageMetadata

    store = SQLiteGalleryStore(sys.argv[1])
    print("ready", flush=True)
    n = 0
    while True:
        size = random.choice([(96, 96), (256, 256), (384, 256)])
        picture = Image.frombytes("RGB", size, random.randbytes(size[0] * size[1] * 3))
        user = random.choice(["alice", "bob", None])
        store.save(picture, ImageMetadata(prompt=f"image {n} кот", seed=n), user=user)
        if n % 5 == 0:
            store.delete(store.list(limit=1).items[0].id)
        n += 1
    """
)


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "g"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(1234)
    for _round in range(6):
        process = subprocess.Popen(
            [sys.executable, str(script), str(root)], env=env, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.8))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()

        with SQLiteGalleryStore(root) as store:
            assert store.last_open.rebuilt is False  # SQLite's WAL survives a kill
            assert temps(root) == []
            files = pngs(root)
            assert store.count() == len(files)
            listed = store.list(limit=10_000).items
            assert sorted(i.path for i in listed) == files
            for item in listed:
                with Image.open(item.path) as picture:
                    picture.load()  # complete
                on_disk = read_metadata(item.path)
                assert on_disk is not None and on_disk == item.meta
                assert item.user == on_disk.extra.get("user")
            if listed:
                chosen = listed[: min(5, len(listed))]
                archive_path = store.write_zip([i.id for i in chosen], tmp_path / "k.zip")
                with zipfile.ZipFile(archive_path) as archive:
                    for item in chosen:
                        assert archive.read(item.path.name) == item.path.read_bytes()
    assert len(pngs(root)) > 0
