"""`POST /passengers/forecast` over HTTP against the real server: answers, intervals, defaults, bad inputs."""

from __future__ import annotations

import json
import shutil

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from loadtests.server import free_port, served
from serving.inference.forecast import recursive_forecast, session_step
from serving.repository.card import ForecastCalibration
from serving.repository.layout import newest
from training.data import load_passengers

from .conftest import comparable

ROUTE = "/passengers/forecast"
_, SERIES = load_passengers()
HISTORY = SERIES[:25].tolist()  # one window of the quick model, 1949-01 to 1951-01


@pytest.fixture(scope="module")
def card(trained_models) -> dict:
    return json.loads((newest(trained_models / "passengers") / "card.json").read_text())


def test_forecast_equals_in_process_onnx_runtime(client, trained_models, card):
    history = SERIES[:120].tolist()
    response = client.post(ROUTE, json={"history": history, "horizon": 36})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "passengers", "version": card["version"],
                             "sha256": card["graphs"]["model"]["sha256"]}
    session = ort.InferenceSession(str(newest(trained_models / "passengers") / "model.onnx"))
    expected = recursive_forecast(session_step(session, "window"), history, card["preprocessing"]["window"], 36)
    np.testing.assert_allclose(body["forecast"], expected, rtol=1e-6)


def test_every_forecast_month_carries_its_interval(client, card):
    calibration = ForecastCalibration(**card["forecast_calibration"])
    answers = {level: client.post(ROUTE, json={"history": SERIES[:120].tolist(), "horizon": 36, "level": level}).json()
               for level in (0.8, 0.95)}
    for level, body in answers.items():
        assert body["level"] == level and len(body["intervals"]) == 36
        forecast, (low, high) = np.array(body["forecast"]), np.array(body["intervals"]).T
        assert ((low < forecast) & (forecast < high)).all()
        # Symmetric in log passengers, h^exponent times the conformal quantile of the card's scores.
        np.testing.assert_allclose(np.log(high / forecast), np.log(forecast / low), rtol=1e-9)
        np.testing.assert_allclose(np.log(high / forecast),
                                   [calibration.half_width(level, h) for h in range(1, 37)], rtol=1e-6)
        assert (np.diff(np.log(high / low)) >= 0).all()  # relative width never shrinks with the horizon
    widths = {level: np.diff(body["intervals"], axis=1).ravel() for level, body in answers.items()}
    assert (widths[0.8] < widths[0.95]).all()


def test_default_level_is_90_percent(client):
    body = client.post(ROUTE, json={"history": HISTORY}).json()
    assert body["level"] == 0.9 and len(body["intervals"]) == 12


def test_a_card_without_calibration_answers_without_intervals(trained_models, tmp_path):
    """A model exported before the forecast calibration existed still serves its forecasts."""
    models = tmp_path / "models"
    shutil.copytree(trained_models / "passengers", models / "passengers")
    card = json.loads((newest(models / "passengers") / "card.json").read_text())
    del card["forecast_calibration"]
    (newest(models / "passengers") / "card.json").write_text(json.dumps(card))
    with served(free_port(), tmp_path / "serve.log", {"ZOOSERVE_MODELS_DIR": str(models)}, core=None) as url:
        response = httpx.post(url + ROUTE, json={"history": HISTORY, "level": 0.8}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["intervals"] is None and body["level"] == 0.8 and len(body["forecast"]) == 12


def test_default_history_is_the_full_series(client):
    default = client.post(ROUTE, json={})
    assert default.status_code == 200 and len(default.json()["forecast"]) == 12
    assert comparable(default) == comparable(client.post(ROUTE, json={"history": SERIES.tolist(), "horizon": 12}))


@pytest.mark.parametrize("horizon", [1, 36])
def test_horizon_bounds_are_served(client, horizon):
    response = client.post(ROUTE, json={"history": HISTORY, "horizon": horizon})
    assert response.status_code == 200 and len(response.json()["forecast"]) == horizon


def _with(index: int, value) -> dict:
    return {"history": [*HISTORY[:index], value, *HISTORY[index + 1:]]}


BAD_REQUESTS = {
    "zero value": (_with(0, 0.0), "history.0"),
    "negative value": (_with(3, -5.0), "history.3"),
    "string value": (_with(1, "118"), "history.1"),
    "one month short": ({"history": HISTORY[:-1]}, "history"),
    "not a list": ({"history": 112.0}, "history"),
    "oversized history": ({"history": HISTORY * 49}, "history"),
    "horizon 0": ({"horizon": 0}, "horizon"),
    "horizon 37": ({"horizon": 37}, "horizon"),
    "fractional horizon": ({"horizon": 1.5}, "horizon"),
    "extra field": ({"horizon": 12, "start": "1949-01"}, "start"),
    "over the documented maximum": ({"history": [1e39] * 25}, "history.0"),
    "too small for float32 ratios": ({"history": [1e-39] * 25}, "history.0"),
    "level over 0.99": ({"level": 0.999}, "level"),
    "level under 0.5": ({"level": 0.4}, "level"),
    "level as a string": ({"level": "0.9"}, "level"),
}


@pytest.mark.parametrize("payload, field", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_is_a_400_naming_the_field(client, payload, field):
    response = client.post(ROUTE, json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"].startswith(f"{field}: ")
    assert any(item["field"] == field for item in body["detail"])


def test_too_short_names_the_window(client, card):
    response = client.post(ROUTE, json={"history": HISTORY[:3]})
    window = card["preprocessing"]["window"]
    assert response.json()["error"] == f"history: needs at least {window} monthly values, got 3"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values(client, token):
    raw = json.dumps({"history": HISTORY}).replace("118.0", token, 1)
    response = client.post(ROUTE, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"].startswith("history.1: ")


def test_still_healthy_after_bad_requests(client):
    for payload, _ in BAD_REQUESTS.values():
        client.post(ROUTE, json=payload)
    assert client.get("/readyz").status_code == 200
    assert client.post(ROUTE, json={"history": HISTORY}).status_code == 200
