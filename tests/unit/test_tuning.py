"""Cross-validation's two extensions: the nested estimate of a selection, and the curve over size."""

from __future__ import annotations

import numpy as np
import pytest

from training.tuning import cross_validate, nested_cross_validate, predicting, size_curve


def _fit(params, xf, yf, _xv, _yv):
    """A polynomial of the candidate's degree by least squares."""
    coef = np.polyfit(xf[:, 0], yf, params["degree"])
    return lambda x: np.polyval(coef, x[:, 0])


def _data(rows: int = 300):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (rows, 1))
    return x, x[:, 0] ** 2 + rng.normal(0, 0.3, rows)


def test_nested_cross_validation_scores_each_outer_fold_on_rows_its_search_never_saw():
    x, y = _data()
    candidates = [{"degree": 1}, {"degree": 2}]
    seen = []

    def fit(params, xf, yf, xv, yv):
        seen.append((len(xf), len(xv)))
        return _fit(params, xf, yf, xv, yv)

    nested = nested_cross_validate(candidates, predicting(fit), x, y, folds=3)
    assert [row["chosen"] for row in nested["folds"]] == [{"degree": 2}] * 3  # the quadratic wins every search
    assert nested["outer_rmse_mean"] == pytest.approx(np.mean([row["rmse"] for row in nested["folds"]]))
    assert nested["outer_rmse_std"] == pytest.approx(np.std([row["rmse"] for row in nested["folds"]]))
    # 3 outer folds, each a 2-candidate, 3-fold search on its 200 rows plus one refit scored on its 100.
    assert len(seen) == 3 * (2 * 3 + 1) and seen[6] == (200, 100)
    assert 0.25 < nested["outer_rmse_mean"] < 0.4  # the noise's 0.3, not the linear fit's error


def test_the_size_curve_ends_at_the_cross_validation_and_gains_from_rows():
    x, y = _data()
    best, table = cross_validate([{"degree": 8}], predicting(_fit), x, y, folds=5)
    curve = size_curve(best, _fit, x, y, folds=5, shares=(0.05, 0.5, 1.0))
    assert curve["training_rows"] == [12, 120, 240]
    assert curve["val_rmse_mean"][-1] == pytest.approx(table[0]["val_rmse_mean"])
    # A degree-8 polynomial on 12 points overfits: the gap between fitted and held-out rows closes with rows.
    gaps = np.subtract(curve["val_rmse_mean"], curve["train_rmse_mean"])
    assert gaps[0] > gaps[-1] and curve["val_rmse_mean"][0] > curve["val_rmse_mean"][-1]
