"""K-fold cross-validation over a list of candidate hyperparameters (the seed's section 1.3)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.model_selection import KFold
from tqdm import tqdm

FitPredict = Callable[[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def cross_validate(
    candidates: list[dict[str, Any]],
    fit_predict: FitPredict,
    x: np.ndarray,
    y: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    desc: str = "cv",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validation RMSE (mean, std over folds) per candidate; returns the best and the table.

    ``fit_predict(params, x_fit, y_fit, x_val, y_val)`` trains on the fold's training part and
    predicts its validation part (``y_val`` is there for early stopping, never for scoring).
    Only the training split ever reaches this function.
    """
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(x))
    table = []
    with tqdm(total=len(candidates) * folds, desc=desc, unit="fit") as progress:
        for params in candidates:
            rmses = []
            for fit_idx, val_idx in splits:
                pred = fit_predict(params, x[fit_idx], y[fit_idx], x[val_idx], y[val_idx])
                rmses.append(float(np.sqrt(np.mean((np.ravel(pred) - y[val_idx]) ** 2))))
                progress.update()
            row = {"params": params, "val_rmse_mean": float(np.mean(rmses)), "val_rmse_std": float(np.std(rmses))}
            table.append(row)
            progress.write(f"{desc}: {params} -> val RMSE {row['val_rmse_mean']:.4f} ± {row['val_rmse_std']:.4f}")
    best = min(table, key=lambda row: row["val_rmse_mean"])
    return best["params"], table
