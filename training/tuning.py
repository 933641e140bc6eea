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


def nested_cross_validate(
    candidates: list[dict[str, Any]],
    fit_predict: FitPredict,
    x: np.ndarray,
    y: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    desc: str = "nested cv",
    error: tuple[str, Error] = ("rmse", rmse),
) -> dict[str, Any]:
    """The error of the whole selection procedure (the seed's nested cross-validation): each outer
    fold runs ``cross_validate`` over ``candidates`` on the other folds alone, refits the winner
    there and scores it on the outer fold, which no search or fit chose anything on (a
    ``fit_predict`` that stops early on the rows it is given would: the GBM's does not). The
    inner winners may differ from fold to fold; their spread is the procedure's, not one model's."""
    name, measure = error
    outer = KFold(n_splits=folds, shuffle=True, random_state=seed + 1)  # not the inner folds' split
    rows = []
    for number, (train_idx, held_idx) in enumerate(outer.split(x), start=1):
        best, _ = cross_validate(candidates, fit_predict, x[train_idx], y[train_idx], folds=folds, seed=seed,
                                 desc=f"{desc} outer {number}/{folds}", error=error)
        pred = fit_predict(best, x[train_idx], y[train_idx], x[held_idx], y[held_idx])
        rows.append({"outer_fold": number, "chosen": best, name: measure(y[held_idx], pred)})
    errors = [row[name] for row in rows]
    return {"outer_folds": folds, "inner_folds": folds, f"outer_{name}_mean": float(np.mean(errors)),
            f"outer_{name}_std": float(np.std(errors)), "folds": rows}


Fit = Callable[[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]
SIZE_SHARES = (0.1, 0.25, 0.5, 1.0)


def size_curve(
    params: dict[str, Any],
    fit: Fit,
    x: np.ndarray,
    y: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    shares: tuple[float, ...] = SIZE_SHARES,
    error: tuple[str, Error] = ("rmse", rmse),
) -> dict[str, Any]:
    """The learning curve over training-set size (the seed's diagnostic of bias and variance): for
    each share of each fold's training part, the error on the rows fitted and on the fold held out,
    as mean and standard deviation over the folds. ``fit(params, x_fit, y_fit, x_val, y_val)``
    returns a predictor (``y_val`` for early stopping only, as in ``cross_validate``: a fit that
    stops early keeps the epoch best on the held-out fold). A gap that closes as rows grow says
    more data helps; two high curves that meet say the model is too simple."""
    name, measure = error
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(x))
    order = np.random.default_rng(seed)
    fitted, held = np.zeros((len(shares), folds)), np.zeros((len(shares), folds))
    rows = []
    for fold, (fit_idx, val_idx) in enumerate(tqdm(splits, desc="size curve", unit="fold")):
        drawn = order.permutation(fit_idx)
        for i, share in enumerate(shares):
            # A random share, in the rows' own order: the whole of it is the cross-validation's own fit.
            part = np.sort(drawn[:max(2, int(round(share * len(drawn))))])
            predict = fit(params, x[part], y[part], x[val_idx], y[val_idx])
            fitted[i, fold], held[i, fold] = measure(y[part], predict(x[part])), measure(y[val_idx], predict(x[val_idx]))
            if fold == 0:
                rows.append(len(part))
    return {"params": params, "folds": folds, "training_rows": rows,
            f"train_{name}_mean": fitted.mean(1).tolist(), f"train_{name}_std": fitted.std(1).tolist(),
            f"val_{name}_mean": held.mean(1).tolist(), f"val_{name}_std": held.std(1).tolist()}


def predicting(fit: Fit) -> FitPredict:
    """A ``Fit`` as ``cross_validate`` calls it: fit, then predict the validation rows."""
    return lambda params, xf, yf, xv, yv: fit(params, xf, yf, xv, yv)(xv)
