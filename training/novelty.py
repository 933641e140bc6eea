"""Out-of-distribution scores: the Mahalanobis distance of an input's features to the training data.

Class means and one shared covariance of the training features (Lee et al., 2018, for the CNNs'
penultimate layers; one class for the house features) are baked into a small ONNX graph,
``features -> score``, that the service runs after the model: the score is the distance to the
nearest class mean, in the metric of the training data's spread. The threshold flags a fixed
share of held-out in-distribution inputs; how well the score separates inputs the model was
never meant to see is measured (AUROC) and written in the card.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.covariance import LedoitWolf

from . import metrics
from .export import Graph

INPUT, OUTPUT = "features", "score"
FILE = "novelty.onnx"
FLAG_SHARE = 0.05  # of the held-out in-distribution inputs


def fit(features: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C, D) and the whitening matrix L (D, D), L L^T the inverse shared covariance.
    Ledoit-Wolf shrinkage keeps the covariance invertible where rows are few for the dimension
    (244 photos in 1,280 dimensions)."""
    features = np.asarray(features, np.float64)
    labels = np.zeros(len(features), int) if labels is None else labels
    classes = np.unique(labels)
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    centred = features - means[np.searchsorted(classes, labels)]
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    return means, np.linalg.cholesky(np.linalg.inv(covariance))


def scores(features: np.ndarray, means: np.ndarray, whitening: np.ndarray, log1p: np.ndarray | None = None
           ) -> np.ndarray:
    """The distance of each row to its nearest class mean (NumPy: the graph's parity reference)."""
    difference = (_log_scaled(features, log1p) @ whitening)[:, None, :] - (means @ whitening)[None]
    return np.sqrt((difference**2).sum(axis=2).min(axis=1))


def _log_scaled(features: np.ndarray, log1p: np.ndarray | None) -> np.ndarray:
    """float64 features, log1p(max(x, 0)) where the mask says (the graph's first nodes do the same)."""
    features = np.asarray(features, np.float64)
    return features if log1p is None else np.where(log1p, np.log1p(np.maximum(features, 0)), features)


def features_of(model: Any, batches: Iterable[Any]) -> np.ndarray:
    """The second output (the features) of a PyTorch classifier returning (scores, features), in
    eval mode, batch by batch: what a family's novelty graph is fitted on."""
    import torch

    model.eval()
    with torch.no_grad():
        return np.concatenate([model(batch)[1].numpy() for batch in batches])


def _writer(means: np.ndarray, whitening: np.ndarray, log1p: np.ndarray | None) -> Callable:
    """The ONNX graph of ``scores``, as differences z - c (z = x L, c the whitened class means)
    rather than |z|^2 - 2 z.c + |c|^2, which loses float32 digits to cancellation."""
    constants = {"whitening": whitening, "centres": means @ whitening}
    nodes, source = [], INPUT
    if log1p is not None:  # heavy-tailed columns are compared on a log scale, as the fit saw them
        constants.update(mask=log1p, zero=np.zeros(1), one=np.ones(1))
        nodes += [helper.make_node("Max", [INPUT, "zero"], ["positive"]),
                  helper.make_node("Add", ["positive", "one"], ["shifted"]),
                  helper.make_node("Log", ["shifted"], ["logged"]),
                  helper.make_node("Where", ["mask", "logged", INPUT], ["scaled"])]
        source = "scaled"
    nodes += [
        helper.make_node("MatMul", [source, "whitening"], ["z"]),
        helper.make_node("Unsqueeze", ["z", "axis_1"], ["z_row"]),  # (N, 1, D) against (C, D)
        helper.make_node("Sub", ["z_row", "centres"], ["difference"]),
        helper.make_node("Mul", ["difference", "difference"], ["squares"]),
        helper.make_node("ReduceSum", ["squares", "axis_2"], ["squared"], keepdims=0),
        helper.make_node("ReduceMin", ["squared", "axis_1"], ["nearest"], keepdims=0),
        helper.make_node("Sqrt", ["nearest"], [OUTPUT]),
    ]
    initializers = [numpy_helper.from_array(np.asarray(value, bool if key == "mask" else np.float32), key)
                    for key, value in constants.items()]
    initializers += [numpy_helper.from_array(np.array([axis], np.int64), f"axis_{axis}") for axis in (1, 2)]
    dim = whitening.shape[0]
    graph = helper.make_graph(nodes, "novelty",
                              [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", dim])],
                              [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch"])], initializers)
    # IR 8 (ONNX 1.13): what every ONNX Runtime of the last years loads, whatever ``onnx`` writes by default.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    return lambda path: onnx.save(model, str(path))


def graph(train_features: np.ndarray, labels: np.ndarray | None, parity_features: np.ndarray,
          log1p: Sequence[bool] | None = None) -> Graph:
    """The card's ``novelty`` graph fitted on ``train_features`` (transformed by log1p where the
    mask says, for tabular rows), checked against ``scores`` on ``parity_features``."""
    mask = None if log1p is None else np.asarray(log1p, bool)
    means, whitening = fit(_log_scaled(train_features, mask), labels)
    return Graph(file=FILE, write=_writer(means, whitening, mask),
                 reference=lambda feeds: [scores(feeds[INPUT], means, whitening, mask)],
                 parity_inputs={INPUT: np.asarray(parity_features, np.float32)},
                 units={INPUT: "the model's features", OUTPUT: "Mahalanobis distance to the nearest class mean"},
                 rtol=1e-4)


def card_section(validation: np.ndarray, test: np.ndarray, outside: dict[str, np.ndarray], validation_name: str,
                 flag_share: float = FLAG_SHARE, ranges: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """The card's ``novelty``: the threshold that flags ``flag_share`` of the ``validation`` scores
    (held-out in-distribution inputs), the share of ``test`` it flags, and per kind of foreign input
    the share flagged and the AUROC of the score against ``test``."""
    threshold = float(np.quantile(validation, 1 - flag_share))
    kinds = {kind: {"rows": int(len(values)), "auroc": auroc(test, values),
                    "flagged": float((values > threshold).mean())} for kind, values in outside.items()}
    section: dict[str, Any] = {
        "method": "mahalanobis", "graph": "novelty", "threshold": threshold,
        "threshold_rule": f"flags {flag_share:.0%} of the {validation_name} ({len(validation)} rows)",
        "test_flagged": float((test > threshold).mean()), "test_rows": int(len(test)),
        "auroc": auroc(test, np.concatenate(list(outside.values()))), "outside": kinds}
    if ranges is not None:
        section["ranges"] = ranges
    return section


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Probability that a foreign input scores above an in-distribution one (ties count half)."""
    labels = np.concatenate([np.zeros(len(inside), bool), np.ones(len(outside), bool)])
    return metrics.roc_curve(labels, np.concatenate([inside, outside]))[2]
