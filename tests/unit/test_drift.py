"""Drift windows against the training data: the population stability index of house features and
of predicted classes, and the out-of-distribution rate."""

from __future__ import annotations

import numpy as np
import pytest

from serving.monitoring.drift import PREDICTED_CLASS, DriftMonitor, psi
from serving.schemas import DigitResponse, House, HousePriceRequest, HousePriceResponse
from training.data import HOUSING_FEATURES, california_housing_split
from training.drift import feature_reference, label_reference

MODEL = {"name": "house-price-gbm", "version": "1", "sha256": "ab" * 32}
WINDOW = 5000


def test_psi_by_hand():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * np.log(1.8) - 0.4 * np.log(0.2))
    assert np.isfinite(psi([0.5, 0.5], [1.0, 0.0]))  # an empty bin is floored, not infinite


def _houses_monitor(rows: np.ndarray) -> dict:
    split = california_housing_split()
    reference = feature_reference(split.x_train, HOUSING_FEATURES)
    monitor = DriftMonitor(WINDOW, lambda name: (reference, "tabular-regression", "1"))
    flag = {"score": 1.0, "threshold": 5.0, "flagged": False, "outside_training_range": []}
    for start in range(0, len(rows), 1000):
        chunk = rows[start:start + 1000]
        request = HousePriceRequest.model_construct(houses=[
            House.model_construct(**dict(zip(HOUSING_FEATURES, map(float, row)))) for row in chunk])
        answer = HousePriceResponse(predictions=[{"value": 1.0, "price_usd": 1e5, "out_of_distribution": flag}
                                                 for _ in chunk], level=0.9, model=MODEL)
        monitor.observe(request, answer)
    return monitor.report("house-price-gbm")


def test_test_split_houses_are_stable_and_richer_ones_drift():
    test = california_housing_split().x_test  # 4,128 rows: 5,000 drawn from them
    test_rows = test[np.random.default_rng(0).integers(0, len(test), WINDOW)]
    steady = _houses_monitor(test_rows)
    assert steady["items"]["features"] == WINDOW and steady["ood_flag_rate"] == 0.0
    assert max(steady["psi"].values()) < 0.1, steady["psi"]
    richer = test_rows.copy()
    richer[:, HOUSING_FEATURES.index("MedInc")] *= 1.5
    drifted = _houses_monitor(richer)
    assert drifted["psi"]["MedInc"] > 0.2 and drifted["psi"]["HouseAge"] == steady["psi"]["HouseAge"]


def test_predicted_classes_are_compared_with_the_training_labels():
    reference = label_reference(np.repeat(np.arange(10), 100), [str(d) for d in range(10)])
    default = {"version": "1"}
    monitor = DriftMonitor(100, lambda name: (reference, "image-classification", default["version"]))
    flagged = {"score": 9.0, "threshold": 5.0, "flagged": True, "outside_training_range": []}
    for index in range(150):  # only ones, every other one flagged: the window keeps the newest 100
        answer = DigitResponse(digit=1, probabilities=[0.1] * 10, parity={"label": "odd", "probability": 1.0},
                               out_of_distribution=flagged if index % 2 else None,
                               model={**MODEL, "name": "mnist-cnn"})
        monitor.observe(HousePriceRequest.model_construct(), answer)
    report = monitor.report("mnist-cnn")
    assert report["items"] == {"flags": 75, "features": 0, "labels": 100}
    assert report["ood_flag_rate"] == 1.0 and report["predicted_class_shares"]["1"] == 1.0
    assert report["psi"][PREDICTED_CLASS] > 2  # everything in one class of ten
    assert monitor.report("unknown-model")["items"] == {"flags": 0, "features": 0, "labels": 0}
    default["version"] = "2"  # a new default: its window starts empty, and fills with its own answers
    assert monitor.report("mnist-cnn")["items"] == {"flags": 0, "features": 0, "labels": 0}
    monitor.observe(HousePriceRequest.model_construct(), answer)
    renewed = monitor.report("mnist-cnn")
    assert renewed["version"] == "2" and renewed["items"] == {"flags": 1, "features": 0, "labels": 1}
