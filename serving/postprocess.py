"""Turning model outputs into answers: probabilities and ranked labels (NumPy only)."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities; shifting by the row maximum keeps exp() from overflowing."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def ranked(probabilities: np.ndarray, labels: list[str], k: int) -> list[dict[str, float | str]]:
    """The ``k`` most probable labels of one row, most probable first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"label": labels[i], "probability": float(probabilities[i])} for i in order]
