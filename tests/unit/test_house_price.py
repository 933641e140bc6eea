"""Both house-price models export with parity and a complete card (tiny quick trainings)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from serving.repository.layout import newest
from training.data import HOUSING_FEATURES, california_housing_split

from ..conftest import TRAIN_ROWS, records_training_cost


@pytest.mark.parametrize("name", ["house-price-gbm", "house-price-mlp"])
def test_card_is_complete(trained_models, name):
    card = json.loads((newest(trained_models / name) / "card.json").read_text())
    assert card["name"] == name and card["profile"] == "quick" and card["seed"] == 0
    assert card["data"]["test"] == 4128
    assert card["preprocessing"]["feature_order"] == list(HOUSING_FEATURES)
    parity = card["graphs"]["model"]["parity"]
    assert parity["rows"] == 4128 and parity["rows_over_atol"] <= 4
    metrics = card["metrics"]
    assert 0.3 < metrics["test_rmse"] < 1.0 and metrics["test_r2"] > 0.4
    assert set(metrics["subgroups"]["groups"]) == {"income_q1", "income_q2", "income_q3", "income_q4",
                                                   "coastal", "inland"}
    assert set(metrics["permutation_importance"]) == set(HOUSING_FEATURES)
    assert len(card["cross_validation"]) >= 1 and "val_rmse_std" in card["cross_validation"][0]
    assert records_training_cost(card)
    assert all("mape" in group for group in metrics["subgroups"]["groups"].values())
    if name == "house-price-mlp":  # its learning curve: an epoch's training loss and validation RMSE each
        validation = card["validation"]
        assert len(validation["history"]) == validation["epochs_run"] >= validation["best_epoch"] >= 1
        best = validation["history"][validation["best_epoch"] - 1]
        assert best["val_score"] == validation["best_validation_rmse"] and best["train_loss"] > 0


@pytest.mark.parametrize("name", ["house-price-gbm", "house-price-mlp"])
def test_intervals_are_calibrated_on_rows_the_model_never_fitted(trained_models, name):
    card = json.loads((newest(trained_models / name) / "card.json").read_text())
    residuals = card["interval_calibration"]["residuals"]
    assert len(residuals) == card["data"]["interval_calibration"] > 0 and residuals == sorted(residuals)
    assert card["data"]["train"] + card["data"]["validation"] + len(residuals) == TRAIN_ROWS  # disjoint slices
    for level, measured in card["metrics"]["interval_coverage"].items():
        # Split conformal on a few hundred calibration rows: coverage near nominal on the 4,128 test rows.
        assert abs(measured["coverage"] - float(level)) < 0.06, (level, measured)
        assert set(measured["groups"]) == set(card["metrics"]["subgroups"]["groups"])


def test_gbm_card_reports_baselines(trained_models):
    card = json.loads((newest(trained_models / "house-price-gbm") / "card.json").read_text())
    assert set(card["metrics"]["baselines"]) == {"linear_regression", "random_forest"}


def test_mlp_takes_raw_features(trained_models):
    """Standardization lives in the graph: raw features in, $100k out, no client-side scaling."""
    split = california_housing_split()
    session = ort.InferenceSession(str(newest(trained_models / "house-price-mlp") / "model.onnx"))
    pred = session.run(None, {"features": split.x_test[:500].astype(np.float32)})[0].ravel()
    assert np.sqrt(np.mean((pred - split.y_test[:500]) ** 2)) < 1.0
