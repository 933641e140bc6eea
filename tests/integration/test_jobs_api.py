"""Generation jobs over HTTP against a server of its own: a job outlives its submitter and its
result is the synchronous endpoint's bytes; a cancel stops the sampler within a second and the
next job starts; the cap answers 429; a result expires into a 410; the event stream carries
progress and changing previews through the gateway; every refusal has the one error shape."""

from __future__ import annotations

import json
import time
from typing import Iterator

import httpx
import pytest

from loadtests.jobs import follow
from loadtests.server import free_port, served

MAX_JOBS, TTL = 3, 6
TIMEOUT = 3  # ZOOSERVE_TIMEOUT_SECONDS: an event stream outlives it


@pytest.fixture(scope="module")
def url(trained_models, tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("jobs") / "serve.log"
    with served(free_port(), log, {"ZOOSERVE_MODELS_DIR": str(trained_models), "ZOOSERVE_MAX_JOBS": str(MAX_JOBS),
                                   "ZOOSERVE_JOB_TTL_SECONDS": str(TTL), "ZOOSERVE_TIMEOUT_SECONDS": str(TIMEOUT)},
                core=None) as served_url:
        yield served_url


@pytest.fixture
def client(url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=120) as opened:
        yield opened


@pytest.mark.parametrize("family, body", [("diffusion", {"n": 6, "seed": 7, "steps": 40, "digit": 3}),
                                          ("vae", {"n": 5, "seed": 7, "format": "json"}),
                                          ("gan", {"n": 4, "seed": 7, "digit": 2})])
def test_a_job_outlives_its_submitter_and_gives_the_synchronous_bytes(url, client, family, body):
    with httpx.Client(base_url=url) as submitter:  # gone once it has the 202
        submitted = submitter.post(f"/generate/{family}/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    location = submitted.headers["location"]
    assert location == submitted.json()["location"] and location.startswith(f"/generate/{family}/jobs/")
    done = follow(client, location)
    assert done["state"] == "done" and done["progress"]["done"] == done["progress"]["total"]
    assert done["seed"] == 7 and done["result"] == f"{location}/result" and 0 < done["expires_in"] <= TTL
    result = client.get(done["result"])
    assert result.status_code == 200 and result.content == client.post(f"/generate/{family}", json=body).content


def test_a_cancel_stops_the_sampler_and_the_next_job_starts(client):
    body = {"n": 64, "seed": 1, "steps": 1000}
    first, second = (client.post("/generate/diffusion/jobs", json=body).headers["location"] for _ in range(2))
    follow(client, first, until=("running",), every=0.01)
    cancelled = client.delete(first)  # answers once the sampler has stopped (make jobs times it)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert follow(client, second, until=("running", "done"), every=0.01)["state"] == "running"
    assert client.delete(second).json()["state"] == "cancelled"
    refused = client.get(f"{first}/result")
    assert refused.status_code == 409 and refused.json()["error"].endswith("is cancelled; its result comes once it "
                                                                           "is done")


def test_beyond_the_cap_a_429_with_retry_after_and_results_expire_into_410(client):
    body = {"n": 64, "seed": 1, "steps": 1000}
    accepted = [client.post("/generate/diffusion/jobs", json=body) for _ in range(MAX_JOBS)]
    assert [answer.status_code for answer in accepted] == [202] * MAX_JOBS
    refused = client.post("/generate/vae/jobs", json={"n": 1})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "ZOOSERVE_MAX_JOBS" in refused.json()["error"]
    for answer in accepted:
        client.delete(answer.headers["location"])
    quick = client.post("/generate/vae/jobs", json={"n": 1}).headers["location"]
    assert follow(client, quick)["state"] == "done"
    time.sleep(TTL + 1)
    for path in (quick, f"{quick}/result", f"{quick}/events"):
        gone = client.get(path)
        assert gone.status_code == 410 and "expired" in gone.json()["error"], path


def test_the_event_stream_shows_progress_and_the_digits_emerging(client):
    location = client.post("/generate/diffusion/jobs", json={"n": 32, "seed": 3, "steps": 1000}).headers["location"]
    events = []
    with client.stream("GET", f"{location}/events", params={"every": 50, "preview": "true"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    progress = [data for kind, data in events if kind == "progress"]
    assert events[-1][0] == "done" and events[-1][1]["result"] == f"{location}/result"
    done = [data["progress"]["done"] for data in progress]
    assert done == sorted(done) and len(progress) >= 5, done
    previews = [data["preview"] for data in progress if "preview" in data]
    assert len(set(previews)) >= 2, "the preview did not change"


def test_job_refusals_have_the_one_shape(client):
    location = client.post("/generate/gan/jobs", json={"n": 1}).headers["location"]
    for path, status in ((location.replace("/gan/", "/vae/"), 404), ("/generate/gan/jobs/not-a-job", 404),
                         (f"{location}/events?every=0", 400), (f"{location}/events?preview=maybe", 400)):
        answer = client.get(path)
        assert answer.status_code == status and set(answer.json()) <= {"error", "detail"}, (path, answer.text)
    wrong = client.post("/generate/diffusion/jobs", json={"n": 0})
    assert wrong.status_code == 400 and wrong.json()["detail"][0]["field"] == "n"
    assert client.post("/generate/vae/jobs", json={"n": 1, "version": "9"}).status_code == 404


def test_the_openapi_document_describes_the_job_routes(client):
    paths = client.get("/docs.json").json()["paths"]
    assert {"/generate/diffusion/jobs", "/generate/{family}/jobs/{job}", "/generate/{family}/jobs/{job}/result",
            "/generate/{family}/jobs/{job}/events"} <= set(paths)
    assert {"202", "429"} <= set(paths["/generate/diffusion/jobs"]["post"]["responses"])
    assert "410" in paths["/generate/{family}/jobs/{job}"]["get"]["responses"]

