"""The notes' exercises, in their tiny configurations, show what the notes teach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.labs.__main__ import LABS, main


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    reports = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOOSERVE_REPORTS_DIR", str(reports))
        main(["--tiny"])
    return {name: json.loads((reports / "labs" / name / "figures.json").read_text()) for name in LABS}


def test_every_lab_writes_its_plot(figures):
    assert all(Path(lab["plot"]).name == "plot.png" for lab in figures.values())


def test_ex0_the_weights_approach_the_recurrence(figures):
    lab = figures["ex0"]
    assert lab["distance_from_recurrence"] < 0.05  # weights (1, 1), bias 0
    notes = lab["notes_setup"]
    assert abs(notes["test_prediction"] - 34) > 5 * abs(lab["test"]["prediction"] - 34)  # ten epochs are not enough


def test_ex2_the_deep_tree_wins_on_the_notes_metric_and_loses_on_the_sine(figures):
    lab = figures["ex2"]
    shallow, deep, net = lab["tree depth 2"], lab["tree depth 5"], lab["network 1-10-1"]
    assert deep["train_mse_as_the_notes"] < shallow["train_mse_as_the_notes"]
    assert deep["clean_sine_mse"] > shallow["clean_sine_mse"] > net["clean_sine_mse"]


def test_ex4_sigmoid_gradients_vanish_towards_the_input(figures):
    lab = figures["ex4"]
    assert lab["sigmoid"]["last_over_first"] >= 100
    assert lab["relu"]["last_over_first"] < 100 and lab["sigmoid + batchnorm"]["last_over_first"] < 100


def test_ex5_standardised_inputs_train_faster(figures):
    lab = figures["ex5"]
    assert lab["standardised"]["final_loss"] < lab["raw"]["final_loss"]


def test_ex6_the_error_rises_with_the_label_noise(figures):
    errors = [level["clean_test_mse_mean"] for level in figures["ex6"]["levels"]]
    assert errors == sorted(errors) and errors[-1] > 100 * errors[0]
