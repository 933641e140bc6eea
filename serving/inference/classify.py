"""A classifier's answer rows: calibrated class probabilities and, where the card has one, a novelty score."""

from __future__ import annotations

import numpy as np

from serving.inference import novelty
from serving.inference.postprocess import softmax
from serving.repository.registry import LoadedModel


def classifier_rows(model: LoadedModel, batch: np.ndarray) -> np.ndarray:
    """A classifier's class probabilities for a batch prepared for the CNNs, followed by a column of
    novelty scores where the card has a novelty graph (``novelty.split`` takes them apart).

    The batch is reshaped to the graph's input (the classical classifiers take 784 flat pixels);
    probabilities come from its ``probabilities`` output where it has one, else the softmax of its
    ``logits`` at the card's temperature (fitted on the validation slice so that a 90% answer is
    right about 90% of the time)."""
    spec = model.input_spec()[0]
    outputs = dict(zip([output.name for output in model.card.graphs["model"].outputs],
                       model.run({spec.name: batch.reshape(len(batch), *spec.shape[1:])})))
    if "probabilities" in outputs:
        probabilities = outputs["probabilities"]
    else:
        calibration = model.card.probability_calibration
        probabilities = softmax(outputs["logits"] / (calibration.temperature if calibration is not None else 1.0))
    if model.card.novelty is None:
        return probabilities
    return np.column_stack([probabilities, novelty.scores(model, outputs["features"])])


def versioned_rows(model: LoadedModel, batch: np.ndarray) -> np.ndarray:
    """``classifier_rows`` with a last column holding the number of the version that answered
    (``LoadedModel.number``): a batched worker answers with its own version, which may be another
    than the caller's for the moment a swap takes, and the answer names the one that answered."""
    rows = classifier_rows(model, batch)
    return np.column_stack([rows, np.full(len(rows), model.number, dtype=rows.dtype)])
