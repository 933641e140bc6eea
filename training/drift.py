"""What serving compares live inputs and answers with (the card's ``drift_reference``): each
tabular feature's training deciles with the share of training rows in each bin, and the share of
each label in the training labels. ``serving.monitoring.drift`` computes the population stability
index of a rolling window of requests against them."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from serving.monitoring.drift import feature_shares

BINS = 10


def feature_reference(x: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Per feature: the inner edges of its training deciles and the training rows' share per bin."""
    features = {}
    for column, name in enumerate(names):
        values = x[:, column]
        edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
        features[name] = {"edges": edges.tolist(), "shares": feature_shares(values, edges).tolist()}
    return {"features": features, "rows": int(len(x))}


def label_reference(labels: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """The share of each class in the training labels (integers indexing ``names``)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(names))
    return {"labels": {str(name): float(count / counts.sum()) for name, count in zip(names, counts)},
            "rows": int(counts.sum())}
