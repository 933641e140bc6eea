"""`POST /house-price/predict` over HTTP against the real server: answers, bad inputs, health."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from serving.repository.layout import newest
from training.data import HOUSING_FEATURES, california_housing_split

from .conftest import answered_by, comparable, start_up_refused

EXAMPLE = {"MedInc": 8.3252, "HouseAge": 41.0, "AveRooms": 6.984, "AveBedrms": 1.024, "Population": 322.0,
           "AveOccup": 2.556, "Latitude": 37.88, "Longitude": -122.23}


def _rows(count: int) -> tuple[list[dict], np.ndarray]:
    split = california_housing_split()
    x = split.x_test[:count]
    return [dict(zip(HOUSING_FEATURES, map(float, row))) for row in x], x


@pytest.mark.parametrize("model, name", [("gbm", "house-price-gbm"), ("mlp", "house-price-mlp")])
def test_answers_equal_in_process_onnx_runtime(client, trained_models, model, name):
    houses, x = _rows(64)
    response = client.post("/house-price/predict", json={"houses": houses, "model": model})
    body = answered_by(response, trained_models, name)
    expected = ort.InferenceSession(str(newest(trained_models / name) / "model.onnx")).run(
        None, {"features": x.astype(np.float32)})[0].ravel()
    values = np.array([p["value"] for p in body["predictions"]])
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose([p["price_usd"] for p in body["predictions"]], values * 100_000, atol=0.01)


@pytest.mark.parametrize("name", ["house-price-gbm", "house-price-mlp"])
def test_every_prediction_carries_its_conformal_interval(client, trained_models, name):
    houses, _ = _rows(32)
    card = json.loads((newest(trained_models / name) / "card.json").read_text())
    residuals = card["interval_calibration"]["residuals"]
    widths = {}
    for level in (0.5, 0.9, 0.99):
        body = client.post("/house-price/predict", json={"houses": houses, "model": name.split("-")[-1],
                                                          "level": level}).json()
        assert body["level"] == level
        rank = math.ceil((len(residuals) + 1) * level)  # the split-conformal quantile
        for prediction in body["predictions"]:
            low, high = prediction["interval"]
            assert high == pytest.approx(prediction["value"] + residuals[rank - 1], abs=1e-9)
            assert low == pytest.approx(max(0.0, prediction["value"] - residuals[rank - 1]), abs=1e-9)
            assert prediction["interval_usd"] == [round(low * 100_000, 2), round(high * 100_000, 2)]
        widths[level] = high - low
    assert widths[0.5] < widths[0.9] < widths[0.99]
    refused = client.post("/house-price/predict", json={"houses": houses, "level": 0.999})
    assert refused.status_code == 400 and refused.json()["detail"][0]["field"] == "level"


def test_default_model_is_gbm_and_the_known_house_is_expensive(client):
    response = client.post("/house-price/predict", json={"houses": [EXAMPLE]})
    assert response.status_code == 200
    body = response.json()
    assert body["model"]["name"] == "house-price-gbm"
    assert 3.0 < body["predictions"][0]["value"] < 5.5  # true value 4.526 ($452,600)


def test_a_thousand_houses_in_one_request(client):
    houses, _ = _rows(1000)
    response = client.post("/house-price/predict", json={"houses": houses})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1000


def _with(**changes) -> dict:
    return {"houses": [{**EXAMPLE, **changes}]}


def _without(field: str) -> dict:
    return {"houses": [{k: v for k, v in EXAMPLE.items() if k != field}]}


BAD_REQUESTS = {
    "missing field": (_without("AveRooms"), "houses.0.AveRooms"),
    "extra field": (_with(Color="blue"), "houses.0.Color"),
    "extra top-level field": ({**_with(), "debug": True}, "debug"),
    "string value": (_with(MedInc="8.3"), "houses.0.MedInc"),
    "latitude outside California": (_with(Latitude=47.6), "houses.0.Latitude"),
    "longitude outside California": (_with(Longitude=-100.0), "houses.0.Longitude"),
    "negative population": (_with(Population=-5.0), "houses.0.Population"),
    "empty batch": ({"houses": []}, "houses"),
    "oversized batch": ({"houses": [EXAMPLE] * 1001}, "houses"),
    "unknown model": ({**_with(), "model": "xgboost"}, "model"),
    "no houses": ({}, "houses"),
}


@pytest.mark.parametrize("payload, field", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_is_a_4xx_naming_the_field(client, payload, field):
    response = client.post("/house-price/predict", json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert field in body["error"]
    assert any(item["field"] == field for item in body["detail"])


@pytest.mark.parametrize("raw, field", [
    (json.dumps(_with()).replace("8.3252", "NaN"), "houses.0.MedInc"),
    (json.dumps(_with()).replace("322.0", "Infinity"), "houses.0.Population"),
    ('{"houses": [', "body"),
    ("not json at all", "body"),
])
def test_non_finite_and_malformed_json(client, raw, field):
    response = client.post("/house-price/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith(field)


def test_unknown_route_uses_the_error_shape(client):
    response = client.get("/nope")
    assert response.status_code == 404 and response.json() == {"error": "no route /nope on this server (GET /docs "
                                                                          "lists them)"}


def test_still_healthy_after_bad_requests(client):
    for payload, _ in BAD_REQUESTS.values():
        client.post("/house-price/predict", json=payload)
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "bentoml_service_request_total" in metrics.text
    assert client.post("/house-price/predict", json=_with()).status_code == 200


@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / "model.onnx").unlink(), "is missing"),
    (lambda folder: (folder / "model.onnx").open("ab").write(b"\0"), "sha256"),
])
def test_unverified_graph_stops_start_up(trained_models, tmp_path, damage, message):
    models = shutil.copytree(trained_models, tmp_path / "models")
    damage(newest(models / "house-price-mlp"))
    log = start_up_refused(models, tmp_path / "serve.log", within=60)
    assert message in log and "house-price-mlp" in log


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus series' samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_inference_per_model(client, trained_models):
    before = client.get("/metrics").text
    houses, _ = _rows(5)
    for _ in range(3):
        assert client.post("/house-price/predict", json={"houses": houses, "model": "mlp"}).status_code == 200
    after = client.get("/metrics").text
    series = {"model": "house-price-mlp", "graph": "model"}  # the novelty graph's microseconds are not recorded
    count, rows = "zooserve_inference_seconds_count", "zooserve_batch_size_sum"
    assert _metric(after, count, **series) - _metric(before, count, **series) == 3
    assert _metric(after, rows, **series) - _metric(before, rows, **series) == 15
    assert _metric(after, count, model="house-price-mlp") == _metric(after, count, **series)
    card = json.loads((newest(trained_models / "house-price-mlp") / "card.json").read_text())
    assert _metric(after, "zooserve_model_loaded", model="house-price-mlp") == 1
    assert _metric(after, "zooserve_model_version", model="house-price-mlp") == int(card["version"])


@pytest.mark.parametrize("body", [{"houses": [EXAMPLE], "level": 0.8}, {"houses": [{**EXAMPLE, "MedInc": "x"}]},
                                  {"houses": []}, {"houses": [EXAMPLE], "model": "nope"}])
def test_the_gateways_direct_call_answers_as_bentomls_route_does(client, body):
    """JSON requests go from the gateway straight to the endpoint; a request with an Origin header
    goes through BentoML's route (its CORS layer). Both must answer the same status and body."""
    direct = client.post("/house-price/predict", json=body)
    routed = client.post("/house-price/predict", json=body, headers={"Origin": "https://elsewhere.example"})
    assert direct.status_code == routed.status_code
    assert comparable(direct) == comparable(routed)
    assert direct.headers["content-type"] == routed.headers["content-type"] == "application/json"


def test_methods_the_document_does_not_list_are_405(client):
    """The gateway calls endpoints directly only for the method BentoML routes them under (POST)."""
    response = client.put("/house-price/predict", json={"houses": [EXAMPLE]})
    assert response.status_code == 405 and "error" in response.json()
