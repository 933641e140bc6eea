"""Explanations, novelty scores and model-card prose, on functions and data with known answers."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from serving.inference.explain import occlusion_map, shapley
from training import model_cards, novelty


def test_shapley_of_a_linear_model_is_weight_times_distance_from_the_background_mean():
    rng = np.random.default_rng(0)
    weights, background, rows = rng.normal(size=8), rng.normal(size=(20, 8)), rng.normal(size=(3, 8))
    shares = rng.uniform(0.5, 2.0, size=20)
    values, attributions, baseline = shapley(lambda x: x @ weights, rows, background, shares)
    mean = shares @ background / shares.sum()
    np.testing.assert_allclose(attributions, weights * (rows - mean), atol=1e-12)
    np.testing.assert_allclose(baseline + attributions.sum(axis=1), values, atol=1e-12)


def test_against_one_reference_row_a_one_feature_difference_gets_the_whole_change():
    """Whatever the model, interactions included: v(S) only depends on whether S holds the feature."""
    def model(x):
        return np.sin(x[:, 0] * x[:, 3]) + x[:, 2] ** 2 * x[:, 5]

    reference = np.array([[0.3, -1.0, 0.7, 2.0, 0.1, -0.4]])
    changed = reference.copy()
    changed[0, 2] = 1.9
    values, attributions, baseline = shapley(model, changed, reference)
    assert baseline == pytest.approx(model(reference)[0])
    np.testing.assert_allclose(attributions[0, 2], values[0] - baseline, atol=1e-12)
    np.testing.assert_allclose(np.delete(attributions[0], 2), 0.0, atol=1e-12)


def test_shapley_splits_a_pure_interaction_equally():
    values, attributions, baseline = shapley(lambda x: x[:, 0] * x[:, 1], np.array([[2.0, 3.0, 5.0]]),
                                             np.zeros((1, 3)))
    np.testing.assert_allclose(attributions[0], [3.0, 3.0, 0.0])


def test_occlusion_map_lights_the_pixels_the_score_reads():
    """A 'classifier' whose class 1 is the ink in the top-left 4x4 corner: only that region matters."""
    def probabilities(batch):
        evidence = batch[:, 0, :4, :4].sum(axis=(1, 2))
        return np.stack([1 - evidence / 16, evidence / 16], axis=1)

    picture = np.ones((1, 28, 28))
    fall = occlusion_map(probabilities, picture, target=1, fill=0.0)
    assert fall[:4, :4].min() > 0
    assert np.all(fall[10:, :] == 0) and np.all(fall[:, 10:] == 0)
    assert np.unravel_index(fall.argmax(), fall.shape)[0] < 4


def _clusters(rng, rows):
    labels = rng.integers(0, 3, size=rows)
    centres = np.array([[0.0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0]])
    return centres[labels] + rng.normal(size=(rows, 4)) * [1, 1, 0.1, 0.1], labels


def test_novelty_graph_matches_numpy_and_scores_far_points_high(tmp_path):
    rng = np.random.default_rng(0)
    train, labels = _clusters(rng, 600)
    graph = novelty.graph(train, labels, train[:50])
    graph.write(tmp_path / "novelty.onnx")
    session = ort.InferenceSession(str(tmp_path / "novelty.onnx"), providers=["CPUExecutionProvider"])
    inside, _ = _clusters(rng, 200)
    # Off the thin axes the training data barely spreads along: close in Euclidean terms, far here.
    outside = inside + np.array([0, 0, 1.0, 0])
    score = lambda x: session.run(None, {novelty.INPUT: x.astype(np.float32)})[0]  # noqa: E731
    np.testing.assert_allclose(score(inside), graph.reference({novelty.INPUT: inside})[0], rtol=1e-4, atol=1e-4)
    section = novelty.card_section(score(_clusters(rng, 400)[0]), score(inside), {"shifted": score(outside)},
                                   "validation rows")
    assert section["outside"]["shifted"]["auroc"] > 0.99
    assert section["outside"]["shifted"]["flagged"] > 0.9
    assert section["test_flagged"] < 0.15


def test_log_scaled_columns_score_a_heavy_tail_like_its_log(tmp_path):
    rng = np.random.default_rng(1)
    train = np.column_stack([rng.lognormal(3, 1, size=1000), rng.normal(size=1000)])
    graph = novelty.graph(train, None, train[:20], log1p=[True, False])
    graph.write(tmp_path / "novelty.onnx")
    session = ort.InferenceSession(str(tmp_path / "novelty.onnx"), providers=["CPUExecutionProvider"])
    probe = np.array([[np.exp(3.0), 0.0], [np.exp(9.0), 0.0]], np.float32)
    typical, extreme = session.run(None, {novelty.INPUT: probe})[0]
    assert typical < 1.0 < 5.0 < extreme


def test_footprint_estimates_energy_from_cpu_seconds_and_says_how():
    cost = model_cards.footprint({"wall_seconds": 100.0, "cpu_seconds": 360.0, "device": "cpu"})
    assert cost["energy_wh"] == pytest.approx(360 * model_cards.WATTS_PER_BUSY_CORE / 3600)
    assert cost["co2e_g"] == pytest.approx(cost["energy_wh"] / 1000 * model_cards.GRID_G_CO2E_PER_KWH, abs=1e-3)
    assert "W per busy CPU core" in cost["assumptions"]
