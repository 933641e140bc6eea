"""A first run's server: it answers from the start, says how long each model still training needs,
and serves each one as its card appears, without a restart and without a failed request."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.repository.training_plan import Pending
from training.progress import Progress

from .conftest import free_port, start_server, stop

FIRST = "house-price-gbm"  # trained before the server starts
COMING = ("passengers", "mnist-logreg")  # trained while it runs
FORECAST = ("/passengers/forecast", {"horizon": 2})
REPO = Path(__file__).resolve().parents[2]


def _publish(trained_models: Path, models: Path, name: str) -> None:
    """A model's folder appears whole, as the export step publishes it (a rename)."""
    staging = models / f".{name}-staging"
    shutil.copytree(trained_models / name, staging)
    staging.rename(models / name)


def _documented(response: httpx.Response) -> bool:
    if response.status_code == 200:
        return True
    return (response.status_code == 503 and "retry-after" in response.headers
            and set(response.json()) == {"error"})


def _wait_for(client: httpx.Client, path: str, body: dict, seen: list[httpx.Response], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(client.post(path, json=body))
        if seen[-1].status_code == 200:
            return
        time.sleep(0.5)
    raise AssertionError(f"{path} never answered 200: {seen[-1].status_code} {seen[-1].text}")


@pytest.fixture
def first_run(trained_models: Path, tmp_path: Path):
    """A server over a models directory that holds one model, with a plan of two more."""
    models = tmp_path / "models"
    models.mkdir()
    _publish(trained_models, models, FIRST)
    progress = Progress(tmp_path / "plan.json", "quick", {FIRST: 15.0, **{name: 600.0 for name in COMING}})
    progress.finish(FIRST, 14.0)
    progress.start(COMING[0])
    port = free_port()
    process = start_server(models, port, tmp_path / "serve.log", ZOOSERVE_TRAINING_PROGRESS=str(progress.path))
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if client.get("/models").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                log = (tmp_path / "serve.log").read_text()[-3000:]
                assert process.poll() is None and time.monotonic() < deadline, log
                time.sleep(0.2)
            yield client, progress, models
    finally:
        stop(process)


def test_models_still_training_answer_503_with_the_time_they_need(first_run):
    client, _progress, _models = first_run
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 503
    assert client.post("/house-price/predict", json={"houses": [HOUSE]}).status_code == 200
    refused = client.post(*FORECAST[:1], json=FORECAST[1])
    assert refused.status_code == 503 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"].startswith("model 'passengers' is training in this server's first run")
    assert "left" in refused.json()["error"]
    queued = client.post("/digits/classify", json={"pixels": ONE, "model": "mnist-logreg"})
    assert queued.status_code == 503 and "'mnist-logreg' is queued" in queued.json()["error"]
    assert client.get("/v2/models/passengers/ready").status_code == 404  # not loaded, as Triton answers
    assert client.get("/models/passengers/card").status_code == 503
    listed = {entry["name"]: entry for entry in client.get("/models").json()}
    assert listed[FIRST]["state"] == "loaded"
    assert listed["passengers"]["state"] == "training" and 0 <= listed["passengers"]["progress"] < 1
    assert listed["mnist-logreg"]["state"] == "queued" and listed["mnist-logreg"]["progress"] == 0
    # Every field of a model still to come reaches the page (its error only once it failed).
    assert set(listed["passengers"]) == {field.name for field in dataclasses.fields(Pending)} - {"error"}


def test_each_model_serves_once_trained_and_the_server_becomes_ready(first_run, trained_models):
    client, progress, models = first_run
    before = client.get("/docs.json").json()["components"]["schemas"]["DigitPixels"]["properties"]["model"]
    assert "mnist-logreg" not in before["enum"]
    seen: list[httpx.Response] = []
    _publish(trained_models, models, COMING[0])
    progress.finish(COMING[0], 30.0)
    progress.start(COMING[1])
    _wait_for(client, *FORECAST, seen)
    assert client.get("/readyz").status_code == 503  # one still to come
    _publish(trained_models, models, COMING[1])
    progress.finish(COMING[1], 30.0)
    _wait_for(client, "/digits/classify", {"pixels": ONE, "model": "mnist-logreg"}, seen)
    deadline = time.monotonic() + 30
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "not ready once every planned model was loaded"
        time.sleep(0.5)
    assert all(_documented(response) for response in seen), [(r.status_code, r.text) for r in seen]
    assert client.get("/models/passengers/card").json()["name"] == "passengers"
    assert {entry["state"] for entry in client.get("/models").json()} == {"loaded"}
    digit_models = client.get("/docs.json").json()["components"]["schemas"]["DigitPixels"]["properties"]["model"]
    assert "mnist-logreg" in digit_models["enum"]  # the document follows the models loaded since it was first built


def test_make_serve_answers_at_once_and_trains_the_missing_model_beside_it(trained_models, tmp_path):
    """``python -m training.first_run`` (what ``make serve`` runs): the server comes up over the
    models there, the missing one is trained and picked up, and stopping the command stops both."""
    models = tmp_path / "models"
    shutil.copytree(trained_models, models, ignore=shutil.ignore_patterns("passengers"))
    port, plan = free_port(), tmp_path / "plan.json"
    env = {**os.environ, "ZOOSERVE_MODELS_DIR": str(models), "BENTOML_HOME": str(tmp_path / "bentoml"),
           "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "first-run.log"
    with log.open("w") as output:
        launcher = subprocess.Popen([sys.executable, "-m", "training.first_run", "--port", str(port), "--progress",
                                     str(plan)], cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    seen: list[httpx.Response] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 300
            while not (seen and seen[-1].status_code == 200 and client.get("/readyz").status_code == 200):
                assert launcher.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                try:
                    seen.append(client.post(*FORECAST[:1], json=FORECAST[1]))
                except httpx.TransportError:  # the port is not open yet
                    pass
                time.sleep(0.5)
        assert all(_documented(response) for response in seen), [(r.status_code, r.text) for r in seen]
        assert [entry["name"] for entry in json.loads(plan.read_text())["models"]] == ["passengers"]
        assert json.loads(plan.read_text())["models"][0]["state"] == "done"
        assert "passengers: wrote" in log.read_text() and "x the estimate)" in log.read_text()
    finally:
        launcher.send_signal(signal.SIGTERM)
        try:
            assert launcher.wait(timeout=60) == 143
        finally:
            stop(launcher)  # whatever is left of the group
    with httpx.Client() as client, pytest.raises(httpx.TransportError):
        client.get(f"http://127.0.0.1:{port}/livez")  # the server went with the command


HOUSE = {"MedInc": 3.5, "HouseAge": 20.0, "AveRooms": 5.0, "AveBedrms": 1.0, "Population": 1200.0,
         "AveOccup": 3.0, "Latitude": 37.5, "Longitude": -122.0}
ONE = [[255.0 if 4 <= row < 24 and col in (13, 14) else 0.0 for col in range(28)] for row in range(28)]
