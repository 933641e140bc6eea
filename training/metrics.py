"""Metrics computed on predictions of the exported graph, plus fairness and explicability checks.

The standard figures are scikit-learn's (``sklearn.metrics``); what it lacks is here: errors per
subgroup of block groups (income quartiles, coastal or inland) and permutation importance over
any predict function. Everything takes plain NumPy arrays, so the same maths applies to every
family, and the card records exactly what was measured on the held-out test split.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn import metrics as sk

# Approximate California coastline (latitude, longitude), south to north. A block group counts
# as coastal when it lies within COASTAL_KM of this line: a simple, reproducible proxy for the
# coastal/inland divide the seed's fairness section asks us to compare.
CALIFORNIA_COAST = np.array([
    (32.53, -117.12), (33.20, -117.40), (33.75, -118.40), (34.02, -118.82), (34.40, -119.70),
    (34.45, -120.47), (35.17, -120.75), (35.67, -121.28), (36.55, -121.93), (36.95, -122.05),
    (37.50, -122.50), (37.80, -122.51), (38.30, -123.05), (39.00, -123.72), (40.00, -124.10),
    (40.45, -124.40), (41.20, -124.12), (42.00, -124.21),
])
COASTAL_KM = 40.0


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R2 in the target's own units."""
    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    return {"rmse": float(sk.root_mean_squared_error(y_true, y_pred)),
            "mae": float(sk.mean_absolute_error(y_true, y_pred)),
            "r2": float(sk.r2_score(y_true, y_pred))}


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error, in %: errors relative to a level that grows over the years."""
    return float(100.0 * sk.mean_absolute_percentage_error(np.ravel(y_true), np.ravel(y_pred)))


def forecast_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (%), the figures forecasters compare; R2 says little on a trending series."""
    errors = regression_metrics(y_true, y_pred)
    return {"mae": errors["mae"], "rmse": errors["rmse"], "mape": mape(y_true, y_pred)}


def subgroup_errors(y_true: np.ndarray, y_pred: np.ndarray, groups: dict[str, np.ndarray]) -> dict:
    """Error per subgroup (boolean masks), and the worst-to-best RMSE ratio across them."""
    per_group = {
        name: {"n": int(mask.sum()), **regression_metrics(y_true[mask], y_pred[mask]),
               "mape": mape(y_true[mask], y_pred[mask])}
        for name, mask in groups.items()
    }
    rmses = [group["rmse"] for group in per_group.values()]
    return {"groups": per_group, "rmse_ratio_worst_to_best": float(max(rmses) / min(rmses))}


def _haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * np.arcsin(np.sqrt(a))


def coast_distance_km(latitude: np.ndarray, longitude: np.ndarray, samples: int = 400) -> np.ndarray:
    """Distance from each point to the (densified) coastline polyline, in kilometres."""
    segments = []
    for (lat_a, lon_a), (lat_b, lon_b) in zip(CALIFORNIA_COAST[:-1], CALIFORNIA_COAST[1:]):
        t = np.linspace(0.0, 1.0, samples // len(CALIFORNIA_COAST) + 2)
        segments.append(np.stack([lat_a + t * (lat_b - lat_a), lon_a + t * (lon_b - lon_a)], axis=1))
    coast = np.concatenate(segments)
    distances = _haversine_km(latitude[:, None], longitude[:, None], coast[None, :, 0], coast[None, :, 1])
    return distances.min(axis=1)


def housing_groups(x: np.ndarray, income_edges: np.ndarray, features: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Income quartiles (edges fitted on the training split) and coastal vs inland masks."""
    income = x[:, features.index("MedInc")]
    quartile = np.digitize(income, income_edges)
    coastal = coast_distance_km(x[:, features.index("Latitude")], x[:, features.index("Longitude")]) <= COASTAL_KM
    groups = {f"income_q{q + 1}": quartile == q for q in range(len(income_edges) + 1)}
    groups["coastal"] = coastal
    groups["inland"] = ~coastal
    return groups


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    names: tuple[str, ...],
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """RMSE increase when one feature column is shuffled (mean and std over repeats)."""
    rng = np.random.default_rng(seed)
    base = regression_metrics(y, predict(x))["rmse"]
    result = {}
    for column, name in enumerate(names):
        increases = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, column] = rng.permutation(shuffled[:, column])
            increases.append(regression_metrics(y, predict(shuffled))["rmse"] - base)
        result[name] = {"rmse_increase_mean": float(np.mean(increases)),
                        "rmse_increase_std": float(np.std(increases))}
    return dict(sorted(result.items(), key=lambda item: -item[1]["rmse_increase_mean"]))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class (every class, even one never seen)."""
    return sk.confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1 and macro, micro, weighted F1 of class indices."""
    classes = np.arange(len(labels))
    precision, recall, f1, support = sk.precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                                         zero_division=0)
    per_class = {label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                         "support": int(support[i])} for i, label in enumerate(labels)}
    averaged = {f"{average}_f1": float(sk.f1_score(y_true, y_pred, labels=classes, average=average, zero_division=0))
                for average in ("macro", "micro", "weighted")}
    return {"accuracy": float(sk.accuracy_score(y_true, y_pred)), **averaged, "per_class": per_class}


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False- and true-positive rates over every threshold, and the area under the curve."""
    fpr, tpr, _ = sk.roc_curve(y_true, score, drop_intermediate=False)
    return fpr, tpr, float(sk.roc_auc_score(y_true, score))


def binary_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict:
    """The seed's binary metrics for a positive-class score: accuracy, precision, recall,
    specificity, F1 at ``threshold``, and ROC AUC over all thresholds."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = score >= threshold
    tn, fp, fn, tp = (int(count) for count in sk.confusion_matrix(y_true, y_pred, labels=[False, True]).ravel())
    return {
        "accuracy": float(sk.accuracy_score(y_true, y_pred)),
        "precision": float(sk.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(sk.recall_score(y_true, y_pred, zero_division=0)),
        "specificity": float(sk.recall_score(~y_true, ~y_pred, zero_division=0)),
        "f1": float(sk.f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(sk.roc_auc_score(y_true, score)),
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }
