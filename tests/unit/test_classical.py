"""The classical digit classifiers' cards: chosen by cross-validation, exported with parity,
measured on the test set through their graphs."""

from __future__ import annotations

import json

import pytest

from serving.repository.catalog import CLASSICAL_DIGIT_MODELS
from serving.repository.layout import newest
from training.classical import FAMILIES

from ..conftest import records_training_cost


@pytest.mark.parametrize("name", CLASSICAL_DIGIT_MODELS)
def test_card_is_complete(trained_models, name):
    card = json.loads((newest(trained_models / name) / "card.json").read_text())
    grid = FAMILIES[name].grid
    assert len(card["cross_validation"]) == len(grid) and "val_error_rate_std" in card["cross_validation"][0]
    chosen = {key: card["hyperparameters"][key] for key in grid[0]}
    best = min(card["cross_validation"], key=lambda row: row["val_error_rate_mean"])
    assert chosen == best["params"]  # the fitted model is the grid's best
    graph = card["graphs"]["model"]
    assert [t["name"] for t in graph["outputs"]] == ["label", "probabilities"] and graph["bytes"] > 0
    assert graph["inputs"][0]["shape"] == [-1, 784]
    metrics = card["metrics"]
    assert metrics["test_accuracy"] > 0.6 and set(metrics["odd_even"]) >= {"accuracy", "precision", "recall",
                                                                          "specificity", "f1", "roc_auc"}
    assert records_training_cost(card)
