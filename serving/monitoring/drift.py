"""Drift, per model, over a rolling window of the newest ``ZOOSERVE_DRIFT_WINDOW`` items answered
(houses, digits, photos; in the API worker's memory, whether or not the prediction log is on):

- the rate of out-of-distribution flags among them (and, per minute over the last two hours,
  how many items were answered and flagged);
- for the house models, the population stability index (PSI) of each feature against its
  training deciles (the card's ``drift_reference``, written at export): sum over the bins of
  (observed share - training share) x ln(observed / training). Under 0.1 is usually read as
  stable, 0.1 to 0.2 as a shift to watch, over 0.2 as drift (computed once the window holds
  ``MIN_ITEMS``);
- for the classifiers, the PSI of the predicted classes against the training labels' shares.

The figures go out as Prometheus gauges (``zooserve_drift_psi{model,feature}``,
``zooserve_ood_flag_rate{model}``, ``zooserve_drift_window_items{model}``), refreshed at most
every ``PUBLISH_SECONDS`` per model as requests come, and as ``GET /models/{name}/drift``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel

from serving.repository.telemetry import metrics
from serving.schemas import Answer

PSI_FLOOR = 1e-4  # a bin's share is floored here: an empty bin would make the index infinite
# Items a window needs before its PSI means anything: one house alone scores about 8 on every
# feature (nine of its ten bins empty), which would set the drift alerts off.
MIN_ITEMS = 100
PUBLISH_SECONDS = 2.0
PREDICTED_CLASS = "predicted_class"  # the feature label of the classifiers' class-share PSI
HISTORY_MINUTES = 120  # the flags over time the page draws: per minute, the last two hours


def psi(expected: Sequence[float], observed: Sequence[float]) -> float:
    """The population stability index of observed shares against expected ones (same bins)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), PSI_FLOOR, None)
    a = np.clip(np.asarray(observed, dtype=np.float64), PSI_FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_shares(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The share of ``values`` in each bin the inner ``edges`` make (as ``training.drift`` binned)."""
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


@dataclass
class Window:
    """One model's newest items: flags, feature rows (tabular models) and predicted labels."""

    size: int
    version: str  # the model's default version when the window began: its training data is the reference
    flags: deque = field(init=False)
    rows: deque = field(init=False)
    labels: deque = field(init=False)
    published: float = 0.0
    minutes: deque = field(default_factory=lambda: deque(maxlen=HISTORY_MINUTES))  # [start, items, flagged]

    def __post_init__(self) -> None:
        self.flags, self.rows, self.labels = (deque(maxlen=self.size) for _ in range(3))

    def count(self, verdicts: list[bool]) -> None:
        """This minute's items with a verdict, and how many were flagged."""
        if not verdicts:
            return
        minute = int(time.time() // 60 * 60)
        if not self.minutes or self.minutes[-1][0] != minute:
            self.minutes.append([minute, 0, 0])
        self.minutes[-1][1] += len(verdicts)
        self.minutes[-1][2] += sum(verdicts)


Reference = tuple[dict[str, Any] | None, str, str]  # a card's drift_reference, task and version


class DriftMonitor:
    """See the module's docstring. ``reference(name)``: the model's default version's card's
    ``drift_reference``, task and version, or None for a model this process does not know.
    A new default version starts a new window: the items the old one answered say nothing of it."""

    def __init__(self, size: int, reference: Callable[[str], Reference | None]) -> None:
        self.size, self.reference = size, reference
        self._windows: dict[str, Window] = {}
        self._lock = threading.Lock()  # observed on the event loop, reported from a worker thread too

    def observe(self, data: BaseModel, answer: Answer) -> None:
        """Add one answer's items to its model's window (cheap: appends, and a refresh now and then)."""
        name = answer.model.name
        found = self.reference(name) if answer.drift_window else None
        if found is None:
            return
        reference, task, version = found
        with self._lock:
            window = self._windows.get(name)
            if window is None or window.version != version:
                window = self._windows[name] = Window(self.size, version)
            verdicts = [verdict.flagged for verdict in answer.flags() if verdict is not None]
            window.flags.extend(verdicts)
            window.count(verdicts)
            features = (reference or {}).get("features")
            if features and hasattr(data, "houses"):
                window.rows.extend(tuple(getattr(house, feature) for feature in features) for house in data.houses)
            if task == "image-classification" and (predicted := answer.predicted()):
                window.labels.extend(str(label) for label in predicted)
            due = time.monotonic() - window.published >= PUBLISH_SECONDS
            if due:
                window.published = time.monotonic()
        if due:
            self.report(name)

    def report(self, name: str) -> dict[str, Any]:
        """The model's drift figures over its window (and the gauges set to them)."""
        found = self.reference(name)
        reference, _task, version = found if found is not None else (None, "", "")
        reference = reference or {}
        with self._lock:
            window = self._windows.get(name)
            if window is None or window.version != version:  # none yet, or the default's version changed
                window = Window(self.size, version)
            flags, rows, labels = list(window.flags), np.asarray(window.rows, dtype=np.float64), list(window.labels)
            since = time.time() - HISTORY_MINUTES * 60
            minutes = [list(minute) for minute in window.minutes if minute[0] >= since]
        feature_psi = {}
        features = reference.get("features") or {}
        if len(rows) >= MIN_ITEMS:
            for column, (feature, bins) in enumerate(features.items()):
                feature_psi[feature] = psi(bins["shares"], feature_shares(rows[:, column], bins["edges"]))
        trained = reference.get("labels")
        observed = None
        if trained and len(labels) >= MIN_ITEMS:
            observed = {label: labels.count(label) / len(labels) for label in trained}
            feature_psi[PREDICTED_CLASS] = psi(list(trained.values()), list(observed.values()))
        rate = float(np.mean(flags)) if flags else None
        recorded = metrics()
        for feature, value in feature_psi.items():
            recorded.drift_psi.labels(name, feature).set(value)
        if rate is not None:
            recorded.ood_flag_rate.labels(name).set(rate)
        recorded.drift_window_items.labels(name).set(max(len(flags), len(rows), len(labels)))
        return {"model": name, "version": version or None, "window": self.size,
                "items": {"flags": len(flags), "features": len(rows), "labels": len(labels)},
                "ood_flag_rate": rate, "psi": feature_psi,
                "predicted_class_shares": observed, "training_class_shares": trained, "flags_by_minute": minutes}
