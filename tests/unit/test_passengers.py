"""The passengers forecaster: baselines by hand, the recursion, the intervals' maths, the exported graph
and its card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from serving.inference.forecast import forecast_intervals, recursive_forecast, session_step
from serving.repository.card import ForecastCalibration
from serving.repository.layout import newest
from training import metrics, passengers
from training.data import load_passengers
from training.loop import torch_threads

from ..conftest import records_training_cost


@pytest.fixture(scope="module")
def card(trained_models: Path) -> dict:
    return json.loads((newest(trained_models / "passengers") / "card.json").read_text())


@pytest.fixture(scope="module")
def graph_step(trained_models: Path):
    return session_step(ort.InferenceSession(str(newest(trained_models / "passengers") / "model.onnx")), "window")


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


def test_a_steady_drift_is_fitted_as_errors_linear_in_the_horizon():
    """Forecasting "same as the newest month" on a series growing 2% a month misses by h log(1.02)
    at horizon h; origins 10..13 forecasting to month 14 give horizons 1-4, 1-3, 1-2, 1."""
    values = 100.0 * 1.02 ** np.arange(14)
    horizons, errors = passengers.rolling_log_errors(lambda windows: windows[:, -1:], values, 10, 14, window=3)
    np.testing.assert_array_equal(horizons, [1, 2, 3, 4, 1, 2, 3, 1, 2, 1])
    np.testing.assert_allclose(errors, horizons * np.log(1.02), rtol=1e-5)  # float32 recursion
    assert passengers.horizon_exponent(horizons, errors) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(passengers.conformal_scores(horizons, -errors, 1.0), np.log(1.02), rtol=1e-5)


def test_forecast_intervals_are_the_conformal_quantile_times_h_to_the_exponent():
    calibration = ForecastCalibration(method="rolling-origin-conformal", exponent=0.5,
                                      scores=np.linspace(0.01, 1.0, 100).tolist())
    assert calibration.half_width(0.9, 4) == pytest.approx(2 * 0.91)  # rank ceil(101 * 0.9) = 91
    forecast = np.array([400.0, 300.0, 500.0])
    low, high = forecast_intervals(forecast, calibration, 0.8).T
    np.testing.assert_allclose(low * high, forecast ** 2)  # symmetric in log passengers
    np.testing.assert_allclose(np.log(high / forecast), np.sqrt([1, 2, 3]) * 0.81)
    assert (forecast_intervals(forecast, calibration, 0.95)[:, 1] > high).all()


def test_pooled_scores_cover_every_horizon_of_random_walk_errors():
    """Log errors spread like a random walk's, as sqrt(h): the fitted exponent finds 1/2, and one
    pooled set of scores then gives nominal coverage at each horizon, short and long alike."""
    rng = np.random.default_rng(0)
    horizons = np.arange(1, 25)
    calibrate, fresh = (rng.normal(0, 0.03 * np.sqrt(horizons), (n, 24)) for n in (400, 4000))
    exponent = passengers.horizon_exponent(np.tile(horizons, 400), calibrate.ravel())
    assert exponent == pytest.approx(0.5, abs=0.02)
    scores = passengers.conformal_scores(np.tile(horizons, 400), calibrate.ravel(), exponent)
    calibration = ForecastCalibration(method="rolling-origin-conformal", exponent=exponent, scores=scores.tolist())
    for level in passengers.INTERVAL_LEVELS:
        half = np.array([calibration.half_width(level, h) for h in horizons])
        coverage = (np.abs(fresh) <= half).mean(axis=0)
        np.testing.assert_allclose(coverage, level, atol=0.03)


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
    for member in card["members"]:  # each member's learning curve, its best epoch's score the one kept
        assert len(member["history"]) == member["epochs_run"]
        assert member["history"][member["best_epoch"] - 1]["val_score"] == member["val_mape"]
    assert records_training_cost(card)
    scores = card["metrics"]
    assert set(scores["baselines"]) == {"seasonal_naive", "seasonal_linear"}
    assert set(scores["validation"]) == {"network", "seasonal_naive", "seasonal_linear"}
    assert Path(scores["plots"][0]).is_file()


def _test_period(card: dict, graph_step) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The history before the test period, the test months, and the graph's forecast of them."""
    _, values = load_passengers()
    history, test = values[:-passengers.TEST_MONTHS], values[-passengers.TEST_MONTHS:]
    return history, test, recursive_forecast(graph_step, history, card["preprocessing"]["window"], len(test))


def test_card_metrics_come_from_the_graph_and_beat_seasonal_naive(card, graph_step):
    history, test, forecast = _test_period(card, graph_step)
    scores = card["metrics"]
    assert {key: scores[f"test_{key}"] for key in ("mae", "rmse", "mape")} == pytest.approx(
        metrics.forecast_metrics(test, forecast))
    assert scores["baselines"]["seasonal_naive"] == pytest.approx(
        metrics.forecast_metrics(test, passengers.seasonal_naive(history, len(test))))
    assert scores["test_mape"] < scores["baselines"]["seasonal_naive"]["mape"]  # even the quick profile


def test_intervals_are_calibrated_on_the_validation_period_only(card, graph_step):
    """The card's scores are the graph's rolling-origin errors over 1957-1958, reproducible from the
    series cut before 1959: the test period never reaches the calibration."""
    _, values = load_passengers()
    test_start = len(values) - passengers.TEST_MONTHS
    fit_end = test_start - passengers.VALIDATION_MONTHS
    horizons, errors = passengers.rolling_log_errors(graph_step, values[:test_start], fit_end, test_start,
                                                     card["preprocessing"]["window"])
    calibration = card["forecast_calibration"]
    assert calibration["method"] == "rolling-origin-conformal"
    assert calibration["exponent"] == pytest.approx(passengers.horizon_exponent(horizons, errors), rel=1e-6)
    np.testing.assert_allclose(calibration["scores"],
                               passengers.conformal_scores(horizons, errors, calibration["exponent"]), rtol=1e-6)
    assert len(errors) == 24 * 25 // 2 and horizons.max() == passengers.VALIDATION_MONTHS


def test_card_reports_interval_coverage_on_the_test_period(card, graph_step):
    history, test, forecast = _test_period(card, graph_step)
    calibration = ForecastCalibration(**card["forecast_calibration"])
    measured = card["metrics"]["interval_coverage"]
    assert set(measured) == {f"{level:.2f}" for level in passengers.INTERVAL_LEVELS}
    for level in passengers.INTERVAL_LEVELS:
        low, high = forecast_intervals(forecast, calibration, level).T
        assert measured[f"{level:.2f}"]["coverage"] == pytest.approx(((low <= test) & (test <= high)).mean())
        assert measured[f"{level:.2f}"]["width"] == pytest.approx((high - low).mean())
        assert 0 <= measured[f"{level:.2f}"]["rolling_coverage"] <= 1
        assert set(measured[f"{level:.2f}"]["rolling_by_horizon"]) == {"1-6", "7-12", "13-24"}
    assert measured["0.80"]["width"] < measured["0.90"]["width"] < measured["0.95"]["width"]
