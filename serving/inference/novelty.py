"""Out-of-distribution flags on answers: the card's novelty graph run on what the model saw.

Training fits the graph (``training/novelty.py``: a Mahalanobis distance to the training data)
and sets its threshold on held-out inputs; here it is only run and compared.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from serving.repository.registry import LoadedModel
from serving.schemas import OutOfDistribution


def scores(model: LoadedModel, features: np.ndarray) -> np.ndarray | None:
    """The novelty graph's score of each row of ``features`` (None: the card has no novelty graph)."""
    if model.card.novelty is None:
        return None
    graph = model.card.novelty.graph
    # Not ``model.run``: the novelty graph costs microseconds, and recording its time in the
    # multiprocess Prometheus files cost more than running it (``make bench ONLY=floor``).
    return model.sessions[graph].run(None, {model.input_spec(graph)[0].name: features.astype(np.float32)})[0]


def flag(model: LoadedModel, score: float, row: Sequence[float] = (), names: Sequence[str] = ()) -> OutOfDistribution:
    """One input's flag: its score against the card's threshold, and for tabular rows the named
    features outside the training range (a price for a house unlike any seen means little).
    ``score`` and ``row`` as Python floats (``tolist()``): NumPy scalars compare ten times slower,
    and a house's eight range checks were a visible share of its request."""
    novelty = model.card.novelty
    ranges = novelty.ranges
    outside = [name for name, value in zip(names, row) if not ranges[name][0] <= value <= ranges[name][1]] if ranges else []
    return OutOfDistribution(score=score, threshold=novelty.threshold,
                             flagged=score > novelty.threshold or bool(outside), outside_training_range=outside)


def split(model: LoadedModel, row: np.ndarray) -> tuple[np.ndarray, OutOfDistribution | None]:
    """A classifier's answer row -> its probabilities and flag: the batched classifiers append the
    novelty score as one last column (one array crosses BentoML's batching)."""
    classes = len(model.card.labels)
    if model.card.novelty is None:
        return row[:classes], None
    return row[:classes], flag(model, float(row[classes]))
