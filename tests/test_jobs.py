"""The job records: stored before submit returns, kept in the gallery's file, recovered after a
crash without running a finished job twice, pruned, and robust to unreadable rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from sd35.gallery import SQLiteGalleryStore
from sd35.image_files import write_png
from sd35.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    KEEP_FINISHED,
    QUEUED,
    WAITING,
    JobStore,
    QueueLimitError,
    image_finder,
)
from sd35.metadata import ImageMetadata
from tests.queue_support import small


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gallery(tmp_path: Path):
    with SQLiteGalleryStore(tmp_path / "outputs") as store:
        yield store


@pytest.fixture
def jobs(gallery):
    store = JobStore.for_gallery(gallery)
    yield store
    store.close()


def test_jobs_live_in_the_gallery_file_and_survive_reopening_both(gallery, tmp_path) -> None:
    store = JobStore.for_gallery(gallery)
    added = store.add([small("a fox"), small("a hen")], owner="ann", source="page")
    store.close()
    gallery.close()
    # Another process (a fresh connection) sees them: they were committed on return.
    with sqlite3.connect(tmp_path / "outputs" / ".index.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 2
    reopened = SQLiteGalleryStore(tmp_path / "outputs")
    assert not reopened.last_open.rebuilt  # the jobs table is not taken for a foreign schema
    again = JobStore.for_gallery(reopened)
    listed = again.list("ann", newest_first=False)
    assert [job.prompt for job in listed] == ["a fox", "a hen"]
    assert [job.id for job in listed] == [job.id for job in added]
    assert listed[0].request == small("a fox") and listed[0].source == "page"
    assert all(job.state == QUEUED for job in listed)
    again.close()
    reopened.close()


def test_each_owner_sees_only_their_jobs(jobs) -> None:
    [mine] = jobs.add([small("mine")], owner="ann", source="api")
    jobs.add([small("theirs")], owner="bob", source="api")
    assert jobs.get(mine.id, "bob") is None
    assert jobs.get(mine.id, "ann") is not None
    assert [job.prompt for job in jobs.list("bob")] == ["theirs"]
    assert jobs.list(None) == []  # no owner is not everybody


def test_queue_limit_counts_pending_jobs_and_stores_nothing_beyond_it(jobs) -> None:
    jobs.add([small("1"), small("2")], owner="ann", source="api", max_queue=3)
    with pytest.raises(QueueLimitError, match="Queue full"):
        jobs.add([small("3"), small("4")], owner="ann", source="api", max_queue=3)
    assert jobs.count("ann") == 2  # all or nothing
    jobs.add([small("bob's")], owner="bob", source="api", max_queue=3)  # per user
    [third] = jobs.add([small("3")], owner="ann", source="api", max_queue=3)
    jobs.cancel(third.id)
    jobs.add([small("4")], owner="ann", source="api", max_queue=3)  # cancelled ones free room


def test_fifo_within_a_user_and_move_to_top(jobs) -> None:
    _a1, a2, a3 = jobs.add([small("a1"), small("a2"), small("a3")], owner="ann", source="api")
    [b1] = jobs.add([small("b1")], owner="bob", source="api")
    assert [job.prompt for job in jobs.heads(0)] == ["a1", "b1"]
    assert jobs.move_to_top(a3.id)
    assert [job.prompt for job in jobs.heads(0)] == ["a3", "b1"]
    assert jobs.position(jobs.get(a3.id)) == 1 and jobs.position(jobs.get(a2.id)) == 3
    assert jobs.position(jobs.get(b1.id)) == 1


def test_waiting_jobs_run_when_due_and_keep_their_place(jobs) -> None:
    clock = Clock()
    jobs.clock = clock
    first, _second = jobs.add([small("first"), small("second")], owner=None, source="page")
    assert jobs.start(first.id, "space:x")
    assert jobs.mark_waiting(first.id, clock.now + 60, "Waiting for GPU quota")
    assert [job.prompt for job in jobs.heads(clock.now)] == ["second"]
    assert jobs.next_due() == clock.now + 60
    clock.now += 61
    assert [job.prompt for job in jobs.heads(clock.now)] == ["first"]
    job = jobs.get(first.id)
    assert job.state == WAITING and job.reason == "Waiting for GPU quota"
    assert job.attempts == 1 and job.backend == "space:x"


def test_cancel_retry_and_clear(jobs) -> None:
    a, b, c = jobs.add([small("a"), small("b"), small("c")], owner=None, source="page")
    assert jobs.cancel(a.id) and jobs.get(a.id).state == CANCELLED
    assert not jobs.cancel(a.id)  # already finished
    jobs.start(b.id, "space:x")
    assert not jobs.cancel(b.id)  # running: only with include_running
    jobs.mark_failed(b.id, "Generation failed", "CUDA out of memory")
    failed = jobs.get(b.id)
    assert (failed.state, failed.error_title, failed.error_message) == (
        FAILED,
        "Generation failed",
        "CUDA out of memory",
    )
    assert jobs.retry(b.id)
    retried = jobs.get(b.id)
    assert retried.state == QUEUED and retried.error_message is None and retried.seq > c.seq
    assert jobs.clear(None) >= 3
    assert {job.id: job.state for job in jobs.list(None)} == {}  # finished rows forgotten


def test_restart_requeues_running_jobs_with_a_note(gallery, jobs) -> None:
    [job] = jobs.add([small("interrupted")], owner=None, source="page")
    jobs.start(job.id, "space:x")
    assert jobs.recover(image_finder(gallery.index_path)) == (0, 1)
    recovered = jobs.get(job.id)
    assert recovered.state == QUEUED
    assert recovered.history[-1][1] == "interrupted by a restart, queued again"


def test_a_crash_between_saving_the_png_and_marking_done_is_not_run_again(
    gallery, jobs, tmp_path
) -> None:
    """The PNG names its job; found on start, the job is marked done with that image."""
    saved_job, unindexed_job = jobs.add(
        [small("saved"), small("unindexed")], owner=None, source="page"
    )
    for job in (saved_job, unindexed_job):
        jobs.start(job.id, "space:x")
    picture = Image.new("RGB", (16, 16), (200, 10, 10))
    image = gallery.save(picture, ImageMetadata(prompt="saved", extra={"job": saved_job.id}))
    # The other PNG was written but the process died before its index row: the gallery's own
    # reconcile on open indexes it, then recovery finds it.
    day = tmp_path / "outputs" / "2026-01-02"
    day.mkdir()
    meta = ImageMetadata(prompt="unindexed", extra={"job": unindexed_job.id})
    write_png(picture, day / "20260102-030405-000001-abcd.png", meta)
    jobs.close()
    gallery.close()
    reopened = SQLiteGalleryStore(tmp_path / "outputs")
    store = JobStore.for_gallery(reopened)
    assert store.recover(image_finder(reopened.index_path)) == (2, 0)
    done = store.get(saved_job.id)
    assert done.state == DONE and done.image_id == image.id
    assert store.get(unindexed_job.id).image_id == "20260102-030405-000001-abcd"
    store.close()
    reopened.close()


def test_finished_rows_older_than_30_days_are_pruned_images_stay(jobs) -> None:
    clock = Clock()
    jobs.clock = clock
    old, recent, pending = jobs.add([small("old"), small("recent"), small("p")], owner=None,
                                    source="api")  # fmt: skip
    jobs.start(old.id, "space:x")
    jobs.mark_done(old.id, "img-1")
    clock.now += KEEP_FINISHED - 10
    jobs.mark_failed(recent.id, "Timed out", "no result")
    clock.now += 20
    assert jobs.prune() == 1
    assert jobs.get(old.id) is None
    assert jobs.get(recent.id) is not None and jobs.get(pending.id).state == QUEUED


def test_a_corrupt_row_is_reported_on_that_job_only(jobs) -> None:
    broken, fine = jobs.add([small("broken"), small("fine")], owner=None, source="api")
    with jobs._lock:
        jobs._conn.execute("UPDATE jobs SET request = '{not json' WHERE id = ?", (broken.id,))
    listed = {job.id: job for job in jobs.list(None)}
    assert listed[broken.id].request is None and "cannot be read" in listed[broken.id].problem
    assert listed[fine.id].problem is None and listed[fine.id].prompt == "fine"
    with jobs._lock:
        jobs._conn.execute(
            "UPDATE jobs SET request = ?, state = 'exploded' WHERE id = ?",
            (json.dumps({"prompt": "x"}), broken.id),
        )
    assert "unknown" in jobs.get(broken.id).problem


def test_pause_is_kept_per_owner(gallery, jobs) -> None:
    jobs.set_paused("ann", True)
    jobs.set_paused(None, True)
    jobs.set_paused(None, False)
    assert JobStore.for_gallery(gallery).paused_owners() == {"ann"}
