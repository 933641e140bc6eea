"""Calibrated class probabilities: temperature scaling fitted on a validation slice.

A network trained with cross-entropy is often over-confident: among the digits it calls with 99%
confidence, fewer than 99% are right. Dividing its logits by one temperature T, chosen to
minimise the negative log-likelihood of the validation slice (Guo et al., 2017), fixes most of
that without changing any prediction (the order of the logits is kept). The expected calibration
error (ECE: the gap between confidence and accuracy, averaged over confidence bins, weighted by
their size) is measured on the test set before and after, and drawn as a reliability diagram.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from . import plots

BINS = 15
LOG_T_RANGE = (-3.0, 3.0)  # T from 0.05 to 20


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(_log_softmax(np.asarray(logits, np.float64) / temperature))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    log_probs = _log_softmax(np.asarray(logits, np.float64) / temperature)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, tolerance: float = 1e-4) -> float:
    """The T minimising the NLL of ``labels``: a golden-section search on log T (the NLL is convex in 1/T)."""
    low, high = LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    while high - low > tolerance:
        if nll(logits, labels, math.exp(a)) < nll(logits, labels, math.exp(b)):
            high, b = b, a
            a = high - ratio * (high - low)
        else:
            low, a = a, b
            b = low + ratio * (high - low)
    return math.exp((low + high) / 2)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Per confidence bin: mean confidence, accuracy and count; and the ECE they add up to."""
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = predicted == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    seen = np.maximum(counts, 1)
    mean_confidence = np.bincount(index, confidence, bins) / seen
    accuracy = np.bincount(index, correct.astype(float), bins) / seen
    ece = float(np.sum(counts / len(labels) * np.abs(accuracy - mean_confidence)))
    return {"ece": ece, "confidence": mean_confidence.tolist(), "accuracy": accuracy.tolist(),
            "counts": counts.tolist()}


def temperature_card(validation_logits: np.ndarray, validation_labels: np.ndarray, test_logits: np.ndarray,
                     test_labels: np.ndarray, report_dir: Path, title: str) -> dict[str, Any]:
    """The card's ``probability_calibration``: T fitted on the validation slice, the test set's ECE
    and NLL before and after it, and the reliability diagram of both."""
    temperature = fit_temperature(validation_logits, validation_labels)
    before = reliability(probabilities(test_logits), test_labels)
    after = reliability(probabilities(test_logits, temperature), test_labels)
    plot = plots.reliability_diagram(before, after, temperature, report_dir / "reliability.png", title)
    return {"method": "temperature", "temperature": temperature, "fitted_on": "validation",
            "validation_rows": int(len(validation_labels)), "bins": BINS,
            "test_ece_before": before["ece"], "test_ece_after": after["ece"],
            "test_nll_before": nll(test_logits, test_labels),
            "test_nll_after": nll(test_logits, test_labels, temperature),
            "plot": str(plot)}
