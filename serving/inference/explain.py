"""Per-answer explanations computed on the exported graphs: Shapley values and occlusion maps.

Plain NumPy around a batch predictor, so training measures the very code that serves (its card
records the attribution error against a larger background) and serving stays torch-free.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]  # (N, features) -> (N,) values


@lru_cache(maxsize=4)
def _coalitions(features: int) -> tuple[np.ndarray, np.ndarray]:
    """Every subset of the features as a boolean mask (2^M, M), and the (M, 2^M) matrix that turns
    the subsets' values into Shapley values: feature i gains w(|S|) (v(S + i) - v(S)) for each
    subset S without it, with w(k) = k! (M - k - 1)! / M!."""
    masks = ((np.arange(2**features)[:, None] >> np.arange(features)) & 1).astype(bool)
    sizes = masks.sum(axis=1)
    weight = np.array([math.factorial(k) * math.factorial(features - k - 1) / math.factorial(features)
                       for k in range(features)] + [0.0])
    # A subset holding i contributes +w(|S| - 1) as S + i; one without it contributes -w(|S|) as S.
    combine = np.where(masks.T, weight[np.maximum(sizes - 1, 0)], -weight[sizes])
    return masks, combine


def shapley(predict: Predict, rows: np.ndarray, background: np.ndarray,
            weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact interventional Shapley values of ``rows`` against ``background`` (K reference rows,
    each standing for the share ``weights`` of the training rows; equal shares by default).

    A coalition S of features takes the row's values for S and each background row's for the rest;
    its value v(S) is the weighted mean prediction over the background. All 2^M coalitions are evaluated
    (K 2^M predictions per row, one call per row), so the values are exact for this background and
    add up, with the baseline v({}), to the prediction v(all features) (to float rounding).
    Returns (predictions (N,), attributions (N, M), baseline)."""
    features = rows.shape[1]
    masks, combine = _coalitions(features)
    weights = np.full(len(background), 1 / len(background)) if weights is None else weights / weights.sum()
    baseline = float(predict(background) @ weights)
    values, attributions = np.empty(len(rows)), np.empty(rows.shape, np.float64)
    for index, row in enumerate(rows):
        mixed = np.where(masks[:, None, :], row[None, None, :], background[None, :, :])
        coalition_values = predict(mixed.reshape(-1, features).astype(rows.dtype)).astype(np.float64)
        coalition_values = coalition_values.reshape(len(masks), len(background)) @ weights
        coalition_values[0] = baseline  # the empty coalition is the background itself
        attributions[index] = combine @ coalition_values
        values[index] = coalition_values[-1]
    return values, attributions, baseline


OCCLUSION_PATCH, OCCLUSION_STRIDE = 6, 2


def occlusion_map(probabilities: Callable[[np.ndarray], np.ndarray], picture: np.ndarray, target: int,
                  fill: float, patch: int = OCCLUSION_PATCH, stride: int = OCCLUSION_STRIDE) -> np.ndarray:
    """How much the probability of ``target`` falls when each region of ``picture`` (1, H, W) is
    painted with ``fill`` (the paper's value): a patch slid over the picture, every placement in one
    batch, each pixel given the mean fall over the placements covering it. Positive: evidence for
    ``target``; negative: covering it makes ``target`` more likely."""
    _, height, width = picture.shape
    corners = [(top, left) for top in range(0, height - patch + 1, stride)
               for left in range(0, width - patch + 1, stride)]
    batch = np.repeat(picture[None], len(corners) + 1, axis=0)
    for index, (top, left) in enumerate(corners, start=1):
        batch[index, :, top:top + patch, left:left + patch] = fill
    scores = probabilities(batch)[:, target]
    fall, covered = np.zeros((height, width)), np.zeros((height, width))
    for (top, left), score in zip(corners, scores[1:]):
        fall[top:top + patch, left:left + patch] += scores[0] - score
        covered[top:top + patch, left:left + patch] += 1
    return fall / np.maximum(covered, 1)
