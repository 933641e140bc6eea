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
        assert best["val_loss"] == pytest.approx(best["val_score"] ** 2, rel=1e-5)  # MSE beside its RMSE
    # The learning curve over training-set size: its last point is the whole fold, so it is the
    # cross-validation's own figure for the chosen candidate.
    curve = card["learning_curve_by_size"]
    chosen = next(row for row in card["cross_validation"] if row["params"] == curve["params"])
    assert curve["val_rmse_mean"][-1] == pytest.approx(chosen["val_rmse_mean"])
    assert curve["training_rows"] == sorted(curve["training_rows"]) and curve["folds"] == 5
    assert len(curve["train_rmse_mean"]) == 4 and min(curve["val_rmse_std"]) > 0
    if name == "house-price-gbm":  # trees fit their few rows closely; the quick MLP's 8 epochs on 144 barely fit any
        assert curve["train_rmse_mean"][0] < curve["val_rmse_mean"][0]


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


def test_nested_cross_validation_is_an_option_of_the_gbm_training(tmp_path, monkeypatch):
    """`python -m training house-price-gbm --nested`: the outer folds' RMSE and its spread in the card."""
    from training.__main__ import main

    monkeypatch.setenv("ZOOSERVE_REPORTS_DIR", str(tmp_path / "reports"))
    assert main(["house-price-gbm", "--profile", "quick", "--limit", "1200", "--nested",
                 "--models-dir", str(tmp_path)]) == 0
    nested = json.loads((newest(tmp_path / "house-price-gbm") / "card.json").read_text())["nested_cross_validation"]
    assert (nested["outer_folds"], nested["inner_folds"], len(nested["folds"])) == (5, 5, 5)
    assert nested["outer_rmse_std"] > 0 and 0.3 < nested["outer_rmse_mean"] < 1.5
