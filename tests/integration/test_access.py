"""The optional API key, request ids and the body limit, on a server started with a key set
(and with adaptive batching forced on, so the batched classifiers are exercised too)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from training.data import load_image_folder, mnist_arrays

from loadtests.server import free_port, served
from tests.pictures import png

KEY = "test-key-5f2a"
LIMIT = 200_000
PAGE = "http://page.test"
HOUSE = {"MedInc": 8.3252, "HouseAge": 41.0, "AveRooms": 6.984, "AveBedrms": 1.024, "Population": 322.0,
         "AveOccup": 2.556, "Latitude": 37.88, "Longitude": -122.23}


@pytest.fixture(scope="module")
def prediction_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("locked-log") / "predictions.db"


@pytest.fixture(scope="module")
def locked(trained_models, tmp_path_factory, prediction_log) -> Iterator[str]:
    settings = {"ZOOSERVE_MODELS_DIR": str(trained_models), "ZOOSERVE_API_KEY": KEY,
                "ZOOSERVE_MAX_BODY_BYTES": str(LIMIT), "ZOOSERVE_CORS_ORIGINS": PAGE, "ZOOSERVE_BATCHING": "on",
                "ZOOSERVE_PREDICTION_LOG": f"sqlite:///{prediction_log}"}
    with served(free_port(), tmp_path_factory.mktemp("locked") / "serve.log", settings, core=None) as url:
        yield url


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                                     {"Authorization": f"Basic {KEY}"}])
@pytest.mark.parametrize("method, path", [("POST", "/house-price/predict"), ("POST", "/digits/classify"),
                                          ("GET", "/v2/models/house-price-gbm"), ("GET", "/docs")])
def test_every_endpoint_but_health_needs_the_key(locked, headers, method, path):
    response = httpx.request(method, locked + path, headers=headers, json={"houses": [HOUSE]})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer" and "API key" in response.json()["error"]


def test_the_key_opens_the_service(locked):
    response = httpx.post(f"{locked}/house-price/predict", json={"houses": [HOUSE]},
                          headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200


def test_nothing_is_logged_where_the_key_is_wrong(locked, prediction_log):
    refused = httpx.post(f"{locked}/house-price/predict", json={"houses": [HOUSE]},
                         headers={"Authorization": "Bearer wrong", "X-Request-ID": "refused-caller"})
    opened = httpx.post(f"{locked}/house-price/predict", json={"houses": [HOUSE]},
                        headers={"Authorization": f"Bearer {KEY}", "X-Request-ID": "allowed-caller"})
    assert refused.status_code == 401 and "x-prediction-id" not in refused.headers
    kept = opened.headers["x-prediction-id"]
    # Feedback waits for the record to be written: after it, the log holds what it will hold.
    feedback = httpx.post(f"{locked}/feedback", json={"prediction_id": kept, "truth": 4.5},
                          headers={"Authorization": f"Bearer {KEY}"})
    assert feedback.status_code == 201
    with sqlite3.connect(prediction_log) as database:
        callers = {row[0] for row in database.execute("SELECT request_id FROM predictions")}
    assert "allowed-caller" in callers and "refused-caller" not in callers


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"])
def test_health_and_metrics_stay_open(locked, path):
    assert httpx.get(locked + path).status_code == 200


def test_request_ids_are_returned_and_echoed(locked):
    fresh = httpx.get(f"{locked}/livez").headers["x-request-id"]
    assert len(fresh) == 32 and fresh != httpx.get(f"{locked}/livez").headers["x-request-id"]
    assert httpx.get(f"{locked}/livez", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    unsafe = httpx.get(f"{locked}/livez", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


def test_oversized_bodies_are_refused_before_parsing(locked):
    auth = {"Authorization": f"Bearer {KEY}"}
    big = httpx.post(f"{locked}/digits/classify", files={"image": ("x.png", b"\0" * (LIMIT + 1), "image/png")},
                     headers=auth)
    assert big.status_code == 413 and "byte limit" in big.json()["error"]

    def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(5):
            yield b" " * (LIMIT // 4)

    streamed = httpx.post(f"{locked}/house-price/predict", content=chunks(),
                          headers={**auth, "content-type": "application/json"})
    assert streamed.status_code == 413
    assert httpx.post(f"{locked}/house-price/predict", json={"houses": [HOUSE]}, headers=auth).status_code == 200


def test_cors_allows_only_the_configured_origin(locked):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = httpx.options(f"{locked}/house-price/predict", headers={"Origin": PAGE, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == PAGE
    other = httpx.options(f"{locked}/house-price/predict", headers={"Origin": "http://elsewhere.test", **preflight})
    assert "access-control-allow-origin" not in other.headers


def test_refusals_are_readable_by_an_allowed_page(locked):
    """A 401 or 413 comes from the access layer, outside BentoML's CORS layer: it must carry the
    same CORS headers, or the page could not show the reason."""
    unauthorized = httpx.post(f"{locked}/house-price/predict", json={"houses": [HOUSE]}, headers={"Origin": PAGE})
    too_large = httpx.post(f"{locked}/house-price/predict", content=b" " * (LIMIT + 1),
                           headers={"Origin": PAGE, "Authorization": f"Bearer {KEY}"})
    stranger = httpx.post(f"{locked}/house-price/predict", json={"houses": [HOUSE]},
                          headers={"Origin": "http://elsewhere.test"})
    assert (unauthorized.status_code, too_large.status_code, stranger.status_code) == (401, 413, 401)
    assert unauthorized.headers["access-control-allow-origin"] == PAGE == too_large.headers["access-control-allow-origin"]
    assert "x-request-id" in unauthorized.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in stranger.headers


def test_the_batched_classifiers_answer(locked):
    auth = {"Authorization": f"Bearer {KEY}"}
    images, labels = mnist_arrays(train=False)
    digit = httpx.post(f"{locked}/digits/classify", files={"image": ("d.png", png(images[0]), "image/png")},
                       headers=auth)
    assert digit.status_code == 200 and digit.json()["digit"] == labels[0]
    path, _ = load_image_folder("val").samples[0]
    photo = httpx.post(f"{locked}/images/classify", files={"image": ("p.jpg", open(path, "rb").read(), "image/jpeg")},
                       headers=auth)
    assert photo.status_code == 200 and len(photo.json()["predictions"]) >= 1
