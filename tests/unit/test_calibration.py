"""Temperature scaling and the expected calibration error on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np

from training import calibration


def test_the_fitted_temperature_undoes_a_known_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (20_000, 10))
    labels = np.array([rng.choice(10, p=p) for p in calibration.probabilities(true_logits)])
    # A model whose logits are the true ones times 3 is over-confident by exactly T = 3.
    assert abs(calibration.fit_temperature(3 * true_logits, labels) - 3.0) < 0.15


def test_ece_of_perfectly_calibrated_and_of_overconfident_answers():
    # 100 answers at confidence 0.8, 80 of them right: calibrated, ECE 0.
    probs = np.tile([[0.8, 0.2]], (100, 1))
    labels = np.array([0] * 80 + [1] * 20)
    assert calibration.reliability(probs, labels)["ece"] < 1e-12
    # The same answers at confidence 0.99: ECE is the 0.19 gap.
    probs = np.tile([[0.99, 0.01]], (100, 1))
    assert abs(calibration.reliability(probs, labels)["ece"] - 0.19) < 1e-9


def test_scaling_keeps_every_prediction():
    logits = np.random.default_rng(1).normal(size=(500, 10))
    assert (calibration.probabilities(logits, 2.5).argmax(1) == logits.argmax(1)).all()
