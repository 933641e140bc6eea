"""Metric maths on hand-made numbers, where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from training import metrics
from training.data import HOUSING_FEATURES


def test_regression_metrics_by_hand():
    result = metrics.regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    assert result["rmse"] == pytest.approx(1.0)  # sqrt(4 / 4)
    assert result["mae"] == pytest.approx(0.5)
    assert result["r2"] == pytest.approx(1 - 4 / 5)


def test_subgroup_errors_and_ratio():
    y = np.zeros(4)
    pred = np.array([1.0, 1.0, 2.0, 2.0])
    result = metrics.subgroup_errors(y, pred, {"a": np.array([1, 1, 0, 0], bool), "b": np.array([0, 0, 1, 1], bool)})
    assert result["groups"]["a"]["rmse"] == pytest.approx(1.0)
    assert result["groups"]["b"]["n"] == 2
    assert result["rmse_ratio_worst_to_best"] == pytest.approx(2.0)


def test_coast_distance_separates_coastal_and_inland_cities():
    # San Francisco, Santa Monica (coastal); Sacramento, Fresno (inland)
    lat = np.array([37.77, 34.02, 38.58, 36.74])
    lon = np.array([-122.45, -118.49, -121.49, -119.79])
    distance = metrics.coast_distance_km(lat, lon)
    assert (distance[:2] < metrics.COASTAL_KM).all() and (distance[2:] > metrics.COASTAL_KM).all()


def test_housing_groups_cover_every_row_once():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(0, 10, 100)] + [rng.uniform(33, 41, 100)] * 6 + [rng.uniform(-123, -116, 100)])
    groups = metrics.housing_groups(x, np.array([2.5, 5.0, 7.5]), HOUSING_FEATURES)
    quartiles = sum(groups[f"income_q{q}"].astype(int) for q in range(1, 5))
    assert (quartiles == 1).all() and ((groups["coastal"] ^ groups["inland"])).all()


def test_permutation_importance_ignores_unused_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    y = 3 * x[:, 0]
    importance = metrics.permutation_importance(lambda a: 3 * a[:, 0], x, y, ("used", "unused1", "unused2"))
    assert list(importance)[0] == "used"
    assert importance["used"]["rmse_increase_mean"] > 1.0
    assert importance["unused1"]["rmse_increase_mean"] == 0.0


def test_forecast_metrics_by_hand():
    result = metrics.forecast_metrics(np.array([100.0, 200.0]), np.array([110.0, 180.0]))
    assert result == pytest.approx({"mae": 15.0, "rmse": np.sqrt((100 + 400) / 2), "mape": 10.0})  # (10% + 10%) / 2


def test_classification_metrics_on_a_hand_checked_confusion_matrix():
    # true a: 8 right, 2 called b; true b: 5 right, 5 called a
    y_true = np.repeat([0, 1], 10)
    y_pred = np.array([0] * 8 + [1] * 2 + [1] * 5 + [0] * 5)
    assert metrics.confusion_matrix(y_true, y_pred, 2).tolist() == [[8, 2], [5, 5]]
    result = metrics.classification_metrics(y_true, y_pred, ["a", "b"])
    assert result["accuracy"] == pytest.approx(13 / 20)
    a, b = result["per_class"]["a"], result["per_class"]["b"]
    assert a["precision"] == pytest.approx(8 / 13) and a["recall"] == pytest.approx(0.8)
    assert b["precision"] == pytest.approx(5 / 7) and b["recall"] == pytest.approx(0.5)
    f1_a, f1_b = 2 * (8 / 13) * 0.8 / (8 / 13 + 0.8), 2 * (5 / 7) * 0.5 / (5 / 7 + 0.5)
    assert result["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)
    assert result["weighted_f1"] == pytest.approx((10 * f1_a + 10 * f1_b) / 20)
    assert result["micro_f1"] == pytest.approx(13 / 20)


def test_confusion_matrix_counts():
    matrix = metrics.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_binary_metrics_and_roc_auc_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0])
    score = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    result = metrics.binary_metrics(y, score)
    assert result["confusion"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 1}
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    assert result["specificity"] == pytest.approx(2 / 3) and result["accuracy"] == pytest.approx(4 / 6)
    # 9 positive/negative pairs, 8 ranked correctly (0.3 < 0.6 is the only miss)
    assert result["roc_auc"] == pytest.approx(8 / 9)


def test_roc_auc_handles_ties_as_half():
    _, _, auc = metrics.roc_curve(np.array([1, 0]), np.array([0.5, 0.5]))
    assert auc == pytest.approx(0.5)
