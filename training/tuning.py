"""K-fold cross-validation over a list of candidate hyperparameters (the seed's section 1.3)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.model_selection import KFold
from tqdm import tqdm

FitPredict = Callable[[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Error = Callable[[np.ndarray, np.ndarray], float]  # (true, predicted) -> lower is better


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.ravel(y_pred) - y_true) ** 2)))


def error_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.ravel(y_pred) != y_true))


def cross_validate(
    candidates: list[dict[str, Any]],
    fit_predict: FitPredict,
    x: np.ndarray,
    y: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    desc: str = "cv",
    error: tuple[str, Error] = ("rmse", rmse),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validation error (mean, std over folds; RMSE unless ``error`` names another) per candidate;
    returns the best and the table.

    ``fit_predict(params, x_fit, y_fit, x_val, y_val)`` trains on the fold's training part and
    predicts its validation part (``y_val`` is there for early stopping, never for scoring).
    Only the training split ever reaches this function.
    """
    name, measure = error
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(x))
    table = []
    with tqdm(total=len(candidates) * folds, desc=desc, unit="fit") as progress:
        for params in candidates:
            errors = []
            for fit_idx, val_idx in splits:
                pred = fit_predict(params, x[fit_idx], y[fit_idx], x[val_idx], y[val_idx])
                errors.append(measure(y[val_idx], pred))
                progress.update()
            row = {"params": params, f"val_{name}_mean": float(np.mean(errors)),
                   f"val_{name}_std": float(np.std(errors))}
            table.append(row)
            progress.write(f"{desc}: {params} -> val {name} {np.mean(errors):.4f} ± {np.std(errors):.4f}")
    best = min(table, key=lambda row: row[f"val_{name}_mean"])
    return best["params"], table
