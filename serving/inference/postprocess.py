"""Turning model outputs into answers: probabilities, ranked labels, odd or even, a card's headline numbers."""

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


def odd_even(probabilities: np.ndarray) -> tuple[str, float]:
    """The seed's odd-vs-even task from one digit's ten probabilities: the odd digits' mass decides."""
    odd = float(probabilities[1::2].sum())
    return ("odd", odd) if odd >= 0.5 else ("even", 1.0 - odd)


def headline_numbers(metrics: dict) -> dict[str, float]:
    """A card's headline figures: its top-level numbers (tables and plots stay in the card)."""
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
