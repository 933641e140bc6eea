"""The prediction log over HTTP, on SQLite (the shared server, as `make serve` logs) and on a real
PostgreSQL server alike: the server's prediction id on each logged answer, feedback stored beside
it, and the live metrics computed from that feedback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import httpx
import numpy as np
import pytest

from loadtests.server import free_port, served
from serving.inference import images
from serving.inference.classify import classifier_rows
from serving.repository.registry import Registry
from serving.schemas import EXAMPLE_HOUSE
from serving.settings import Settings
from training.data import mnist_arrays

from .conftest import refused_naming

DIGITS = 1000


@pytest.fixture(scope="module")
def on_postgres(trained_models, postgres, tmp_path_factory):
    """A server whose prediction log is a PostgreSQL database."""
    log = tmp_path_factory.mktemp("postgres-logged") / "serve.log"
    environment = {"ZOOSERVE_MODELS_DIR": str(trained_models),
                   "ZOOSERVE_PREDICTION_LOG": postgres.create_database("served")}
    with served(free_port(), log, environment, core=None) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def logged(request) -> Iterator[httpx.Client]:
    """A client of a server logging to each kind of database."""
    url = request.getfixturevalue("server" if request.param == "sqlite" else "on_postgres")
    with httpx.Client(base_url=url, timeout=30) as http:
        yield http


def test_every_logged_answer_carries_the_servers_own_prediction_id(logged):
    house = {"houses": [EXAMPLE_HOUSE.model_dump()]}
    first = logged.post("/house-price/predict", json=house, headers={"X-Request-ID": "chosen-by-the-caller"})
    second = logged.post("/house-price/predict", json=house, headers={"X-Request-ID": "chosen-by-the-caller"})
    assert first.status_code == second.status_code == 200, first.text
    assert first.headers["x-request-id"] == "chosen-by-the-caller"  # echoed, never used as the log's key
    ids = [answer.headers["x-prediction-id"] for answer in (first, second)]
    assert ids[0] != ids[1] and "chosen" not in ids[0]
    assert [answer.json()["prediction_id"] for answer in (first, second)] == ids
    picture = logged.post("/generate/gan", json={"n": 1, "seed": 3})  # a PNG answer: the header only
    assert picture.status_code == 200 and len(picture.headers["x-prediction-id"]) == 32
    assert "x-prediction-id" not in logged.post("/noop", json={}).headers  # not a model's answer


def test_inference_protocol_answers_and_job_submissions_are_logged_and_take_feedback(logged):
    features = {"name": "features", "shape": [1, 8], "datatype": "FP32",
                "data": list(EXAMPLE_HOUSE.model_dump().values())}
    before = logged.get("/models/house-price-gbm/live-metrics").json()
    answer = logged.post("/v2/models/house-price-gbm/infer", json={"inputs": [features]})
    assert answer.status_code == 200, answer.text
    prediction_id = answer.headers["x-prediction-id"]
    assert answer.json()["parameters"] == {"prediction_id": prediction_id}  # the protocol's own place for it
    value = answer.json()["outputs"][0]["data"][0]
    assert logged.post("/feedback", json={"prediction_id": prediction_id, "truth": [value]}).status_code == 201
    live = logged.get("/models/house-price-gbm/live-metrics").json()
    assert (live["answers"], live["items"], live["mismatched"]) == (
        before["answers"] + 1, before["items"] + 1, before["mismatched"])  # scored against the tensor's value
    # A classifier's /v2 answer is scored by its label (the widest score), as its REST answer is.
    digits, labels = mnist_arrays(train=False)
    tensor = {"name": "image", "shape": [1, 784], "datatype": "FP32",
              "data": (digits[0].astype(np.float32) / 255).ravel().tolist()}
    before = logged.get("/models/mnist-tree/live-metrics").json()
    digit = logged.post("/v2/models/mnist-tree/infer", json={"inputs": [tensor]})
    assert digit.status_code == 200, digit.text
    assert logged.post("/feedback", json={"prediction_id": digit.headers["x-prediction-id"],
                                          "truth": int(labels[0])}).status_code == 201
    live = logged.get("/models/mnist-tree/live-metrics").json()
    assert (live["items"], live["mismatched"]) == (before["items"] + 1, before["mismatched"])
    # A job's answer is its parameters and seed: logged as it is accepted.
    job = logged.post("/generate/gan/jobs", json={"n": 1, "seed": 5})
    assert job.status_code == 202, job.text
    assert job.json()["prediction_id"] == job.headers["x-prediction-id"]
    assert logged.post("/feedback", json={"prediction_id": job.json()["prediction_id"], "truth": "3",
                                          "comment": "a clear 3"}).status_code == 201


def test_feedback_on_houses_gives_their_live_rmse(logged):
    answer = logged.post("/house-price/predict", json={"houses": [EXAMPLE_HOUSE.model_dump()] * 2, "model": "mlp"})
    predicted = [house["value"] for house in answer.json()["predictions"]]
    stored = logged.post("/feedback", json={"prediction_id": answer.json()["prediction_id"],
                                            "truth": [predicted[0] + 0.5, predicted[1] - 0.5],
                                            "comment": "sold for more, then for less"})
    assert stored.status_code == 201, stored.text
    assert stored.json()["prediction_id"] == answer.json()["prediction_id"] and stored.json()["feedback_id"] >= 1
    live = logged.get("/models/house-price-mlp/live-metrics").json()
    assert live["task"] == "tabular-regression" and live["answers"] >= 1 and live["items"] >= 2
    assert live["rmse"] == pytest.approx(0.5, rel=1e-6) and live["accuracy"] is None


def test_feedback_for_a_thousand_test_digits_gives_the_offline_accuracy(logged, trained_models):
    digits, labels = mnist_arrays(train=False)
    pixels = [digits[i].astype(float).tolist() for i in range(DIGITS)]
    before = logged.get("/models/mnist-logreg/live-metrics").json()

    def classified_and_contested(index: int) -> int:
        answer = logged.post("/digits/classify", json={"pixels": pixels[index], "model": "mnist-logreg"}).json()
        return logged.post("/feedback", json={"prediction_id": answer["prediction_id"],
                                              "truth": int(labels[index])}).status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(classified_and_contested, range(DIGITS))) == {201}
    live = logged.get("/models/mnist-logreg/live-metrics").json()
    # The same graph run here, offline, on the same digits prepared the same way.
    registry = Registry(Settings(models_dir=trained_models, device="cpu", required_models=("mnist-logreg",)))
    batch = np.concatenate([images.to_mnist(images.pixels_to_image(p))[None] for p in pixels])
    offline = classifier_rows(registry.get("mnist-logreg"), batch)[:, :10].argmax(1)
    assert before["answers"] == 0 and (live["answers"], live["items"], live["mismatched"]) == (DIGITS, DIGITS, 0)
    assert live["accuracy"] == float(np.mean(offline == labels[:DIGITS]))


@pytest.mark.parametrize("payload, field", [
    ({"truth": 3}, "prediction_id"),
    ({"prediction_id": "a" * 33, "truth": 3}, "prediction_id"),
    ({"prediction_id": "abc", "truth": [1] * 1001}, "truth"),
    ({"prediction_id": "abc", "truth": {"value": 3}}, "truth"),
    ({"prediction_id": "abc", "truth": 3, "comment": "x" * 2001}, "comment"),
    ({"prediction_id": "abc", "truth": 3, "rating": 5}, "rating"),
])
def test_feedback_that_is_malformed_is_refused_naming_the_field(client, payload, field):
    refused_naming(client.post("/feedback", json=payload), field)


def test_feedback_for_an_unknown_prediction_is_a_404(client):
    response = client.post("/feedback", json={"prediction_id": "never-issued", "truth": 3})
    assert response.status_code == 404 and response.json()["error"].startswith("prediction_id")
    assert client.get("/models/no-such-model/live-metrics").status_code == 404
