"""The job API with a real HTTP client (httpx) against the studio on loopback: jobs are stored
and run, each user sees only their own, bad bodies are refused naming the field with nothing
stored, the per-user limit holds, and waiting jobs say when they will try again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from harness import wait_for
from sd35.server import RunningStudio
from sd35.standin import StandinConfig, StandinServer
from tests.studio_support import launch_studio

ANN, BOB = ("ann", "ann-pass"), ("bob", "bob-pass")
SMALL = {"width": 512, "height": 512, "num_inference_steps": 4}


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    with StandinServer(StandinConfig(seconds_per_step=0.01, concurrency=4)) as server:
        yield server


@pytest.fixture(scope="module")
def queue_app(standin, tmp_path_factory) -> Iterator[RunningStudio]:
    running = launch_studio(
        standin.url,
        tmp_path_factory.mktemp("queue-api") / "outputs",
        api=True,
        api_auth=[ANN, BOB],
        max_queue=3,
        concurrency=1,
    )
    yield running
    running.close()


@pytest.fixture
def ann(queue_app) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=queue_app.url, auth=ANN, timeout=30) as client:
        yield client


@pytest.fixture
def bob(queue_app) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=queue_app.url, auth=BOB, timeout=30) as client:
        yield client


def job_state(client: httpx.Client, job_id: str) -> dict:
    response = client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_add_follow_and_fetch_the_image(ann) -> None:
    response = ann.post("/api/v1/jobs", json={"prompt": "a kite", "count": 2, "seed": 7, **SMALL})
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert [job["state"] for job in jobs] == ["queued", "queued"]
    assert jobs[0]["prompt"] == "a kite" and jobs[0]["source"] == "api"
    assert datetime.fromisoformat(jobs[0]["created"]).tzinfo is not None
    # A seed given means that seed; a batch counts up from it.
    assert [(j["request"]["seed"], j["request"]["randomize_seed"]) for j in jobs] == [
        (7, False),
        (8, False),
    ]
    for job in jobs:
        done = wait_for(lambda j=job: job_state(ann, j["id"])["state"] == "done"
                        and job_state(ann, j["id"]), what="the job to finish")  # fmt: skip
        assert done["image"]["id"] and "retry_at" not in done
        picture = ann.get(done["image"]["url"])
        assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    listed = ann.get("/api/v1/jobs", params={"state": "done"}).json()["jobs"]
    assert [job["id"] for job in listed[:2]] == [jobs[1]["id"], jobs[0]["id"]]  # newest first


def test_each_user_sees_only_their_own_jobs(ann, bob) -> None:
    [job] = ann.post("/api/v1/jobs", json={"prompt": "ann's secret", **SMALL}).json()["jobs"]
    assert bob.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert bob.delete(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert all(j["prompt"] != "ann's secret" for j in bob.get("/api/v1/jobs").json()["jobs"])
    assert job_state(ann, job["id"])["prompt"] == "ann's secret"
    with httpx.Client(base_url=str(ann.base_url)) as nobody:
        assert nobody.get("/api/v1/jobs").status_code == 401
        assert nobody.post("/api/v1/jobs", json={"prompt": "x"}).status_code == 401
    with httpx.Client(base_url=str(ann.base_url), auth=("ann", "wrong")) as wrong:
        assert wrong.get(f"/api/v1/jobs/{job['id']}").status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"prompt": "x", "width": 4096}, "width", "allowed: 512 to 1024"),
        ({"prompt": "x", "num_inference_steps": 0}, "num_inference_steps", "out of range"),
        ({"prompt": "x", "guidance_scale": "high"}, "guidance_scale", "must be a number"),
        ({"prompt": "x", "count": 17}, "count", "1 to 16"),
        ({"prompt": "x", "count": 0}, "count", "1 to 16"),
        ({"prompt": "   "}, "prompt", "required"),
        ({"width": 512}, "prompt", "required"),
        ({"prompt": "x", "steps": 20}, "steps", "Unknown field"),
        ({"prompt": "x", "randomize_seed": "yes"}, "randomize_seed", "true or false"),
    ],
)
def test_bad_bodies_name_the_field_and_store_nothing(ann, body, field, words) -> None:
    before = len(ann.get("/api/v1/jobs", params={"limit": 1000}).json()["jobs"])
    response = ann.post("/api/v1/jobs", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and words in error["message"]
    assert len(ann.get("/api/v1/jobs", params={"limit": 1000}).json()["jobs"]) == before


def test_not_json_and_bad_query(ann) -> None:
    response = ann.post("/api/v1/jobs", content=b"prompt=x")
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    assert ann.get("/api/v1/jobs", params={"state": "sleeping"}).status_code == 400
    assert ann.get("/api/v1/jobs/nope").status_code == 404


def test_queue_full_per_user_pause_resume_and_cancel(ann, bob) -> None:
    assert bob.post("/api/v1/queue/pause").json() == {"paused": True}
    ids = [bob.post("/api/v1/jobs", json={"prompt": f"b{i}", **SMALL}).json()["jobs"][0]["id"]
           for i in range(3)]  # fmt: skip
    refused = bob.post("/api/v1/jobs", json={"prompt": "one too many", **SMALL})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "queue_full"
    assert "Queue full" in refused.json()["error"]["message"]
    queued = bob.get("/api/v1/jobs", params={"state": "queued"}).json()["jobs"]
    assert sorted(job["id"] for job in queued) == sorted(ids)  # paused: none started
    assert [job_state(bob, i)["position"] for i in ids] == [1, 2, 3]
    # Another user's queue is not affected by bob's pause or limit.
    [other] = ann.post("/api/v1/jobs", json={"prompt": "ann goes on", **SMALL}).json()["jobs"]
    wait_for(lambda: job_state(ann, other["id"])["state"] == "done", what="ann's job")
    cancelled = bob.delete(f"/api/v1/jobs/{ids[0]}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert bob.delete(f"/api/v1/jobs/{ids[0]}").status_code == 409
    assert bob.post("/api/v1/queue/resume").json() == {"paused": False}
    wait_for(lambda: all(job_state(bob, i)["state"] == "done" for i in ids[1:]), what="bob's")


def test_a_waiting_job_says_when_it_tries_again(ann, standin) -> None:
    standin.config.quota_retry_in = "0:00:02"
    standin.config.quota_lift_calls = standin.config.quota_refused + 1
    standin.config.fault = "quota_wait"
    try:
        [job] = ann.post("/api/v1/jobs", json={"prompt": "patient", **SMALL}).json()["jobs"]
        waiting = wait_for(lambda: job_state(ann, job["id"])["state"] == "waiting"
                           and job_state(ann, job["id"]), what="the quota wait")  # fmt: skip
        retry_at = datetime.fromisoformat(waiting["retry_at"])
        assert 0 < (retry_at - datetime.now().astimezone()).total_seconds() <= 3
        assert "GPU quota" in waiting["reason"]
        wait_for(lambda: job_state(ann, job["id"])["state"] == "done", what="the job after it")
    finally:
        standin.config.fault = None


def test_a_cross_site_page_cannot_add_jobs(ann) -> None:
    response = ann.post(
        "/api/v1/jobs", json={"prompt": "x"}, headers={"origin": "http://evil.invalid"}
    )
    assert response.status_code == 403
