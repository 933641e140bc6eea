"""The passengers forecaster: baselines by hand, the recursion, the exported graph and its card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from serving.forecast import recursive_forecast, session_step
from training import metrics, passengers
from training.data import load_passengers
from training.loop import torch_threads

from ..conftest import records_training_cost


@pytest.fixture(scope="module")
def card(trained_models: Path) -> dict:
    return json.loads((trained_models / "passengers" / "card.json").read_text())


@pytest.fixture(scope="module")
def graph_step(trained_models: Path):
    return session_step(ort.InferenceSession(str(trained_models / "passengers" / "model.onnx")), "window")


def test_seasonal_naive_repeats_the_last_year():
    history = np.arange(1.0, 25.0)  # two years: 1..12, 13..24
    np.testing.assert_array_equal(passengers.seasonal_naive(history, 15), [*range(13, 25), 13, 14, 15])


def test_seasonal_linear_recovers_a_log_linear_seasonal_series():
    months = np.arange(60)
    season = np.array([0.1, -0.2, 0.05, 0.3, -0.1, 0.0, 0.25, 0.2, -0.05, -0.3, 0.15, -0.15])
    series = np.exp(4.0 + 0.01 * months + season[(months + 5) % 12])  # starts in June: any month works
    np.testing.assert_allclose(passengers.seasonal_linear(series[:48], 12), series[48:], rtol=1e-9)


def test_recursion_matches_a_step_by_step_pytorch_reference():
    _, values = load_passengers()
    window = passengers.PROFILES["full"].window
    torch.manual_seed(0)
    scaling = passengers.WindowScaling(*passengers.windows_and_next(values[:96], window))
    net = passengers.PassengersNet(scaling, [passengers.member_mlp(window - 1, 16) for _ in range(2)]).eval()
    forecast = recursive_forecast(passengers.torch_step(net), values[:120], window, 24)
    series = torch.tensor(values[:120], dtype=torch.float32)
    with torch.no_grad():
        for _ in range(24):
            series = torch.cat([series, net(series[None, -window:])[0]])
    np.testing.assert_allclose(forecast, series[120:].numpy(), rtol=1e-6)


def test_each_served_value_is_the_graph_on_the_window_before_it(card, graph_step):
    """The recursion feeds predictions back: re-running the graph on all windows at once agrees."""
    history, window = np.array(card["series"]["values"], np.float32), card["preprocessing"]["window"]
    forecast = recursive_forecast(graph_step, history, window, 36)
    series = np.concatenate([history, forecast])
    windows = np.stack([series[i - window:i] for i in range(len(history), len(series))])
    np.testing.assert_allclose(graph_step(windows).ravel(), forecast, rtol=1e-6)


def test_graph_takes_raw_passengers_and_ignores_the_level(card, graph_step):
    """Scaling lives in the graph and works on ratios: twice the passengers, twice the forecast."""
    history, window = np.array(card["series"]["values"]), card["preprocessing"]["window"]
    forecast = recursive_forecast(graph_step, history, window, 12)
    np.testing.assert_allclose(recursive_forecast(graph_step, 2 * history, window, 12), 2 * forecast, rtol=1e-5)
    assert 350 < forecast.mean() < 650  # 1961: the 1960 mean was 476 thousand


def test_torch_threads_are_restored():
    """Training runs single-threaded, then hands the process back as it found it."""
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_too_short_a_history_is_refused(graph_step):
    with pytest.raises(ValueError, match="needs at least 25 monthly values, got 24"):
        recursive_forecast(graph_step, np.ones(24), 25, 3)


def test_card_is_complete(card):
    months, values = load_passengers()
    assert card["name"] == "passengers" and card["profile"] == "quick" and card["task"] == "time-series-forecasting"
    assert (card["data"]["validation"], card["data"]["test"]) == ("1957-01..1958-12", "1959-01..1960-12")
    assert card["series"] == {"start": months[0], "values": values.tolist()}
    window = card["preprocessing"]["window"]
    assert card["graphs"]["model"]["inputs"][0]["shape"] == [-1, window]
    parity = card["graphs"]["model"]["parity"]
    assert parity["rows"] == len(values) - window and parity["rows_over_atol"] == 0
    assert len(card["members"]) == passengers.PROFILES["quick"].members
    assert records_training_cost(card)
    scores = card["metrics"]
    assert set(scores["baselines"]) == {"seasonal_naive", "seasonal_linear"}
    assert set(scores["validation"]) == {"network", "seasonal_naive", "seasonal_linear"}
    assert Path(scores["plots"][0]).is_file()


def test_card_metrics_come_from_the_graph_and_beat_seasonal_naive(card, graph_step):
    _, values = load_passengers()
    history, test = values[:-passengers.TEST_MONTHS], values[-passengers.TEST_MONTHS:]
    forecast = recursive_forecast(graph_step, history, card["preprocessing"]["window"], len(test))
    scores = card["metrics"]
    assert {key: scores[f"test_{key}"] for key in ("mae", "rmse", "mape")} == pytest.approx(
        metrics.forecast_metrics(test, forecast))
    assert scores["baselines"]["seasonal_naive"] == pytest.approx(
        metrics.forecast_metrics(test, passengers.seasonal_naive(history, len(test))))
    assert scores["test_mape"] < scores["baselines"]["seasonal_naive"]["mape"]  # even the quick profile
