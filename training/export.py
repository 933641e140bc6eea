"""The one export step every model family goes through.

ONNX export (dynamic batch axis) -> ``onnx.checker`` -> parity of ONNX Runtime against the native
model -> metrics computed by running the exported graph -> ``models/<name>/<n>/card.json``. A graph
that fails the checker or parity never reaches ``models/``, so serving can trust what it finds.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from serving.repository import card as contract  # what the registry will accept at start-up
from serving.repository import layout  # where each version of a model is published
from serving.repository import variants as copies  # the rule the registry checks a kept variant with again
from serving.repository.registry import sha256_of  # the hash the registry checks at start-up

from . import model_cards

PARITY_ATOL = 1e-4
# A variant (int8) serves instead of its graph when it loses less than this much test accuracy:
# the quantisation benchmark's rule, which also found it twice as fast for both CNNs on this CPU.
MAX_VARIANT_ACCURACY_DROP = 0.001
TREE_MAX_EXCEED_FRACTION = 0.001

Arrays = dict[str, np.ndarray]
Sessions = dict[str, ort.InferenceSession]


class ExportError(RuntimeError):
    """The exported graph disagrees with the native model; nothing was written to models/."""


class VariantLeftOut(ExportError):
    """A variant (int8) that does not pick the classes of its graph: the model exports without it."""


def models_dir() -> Path:
    return Path(os.environ.get("ZOOSERVE_MODELS_DIR", "models"))


@dataclass
class Graph:
    """One ONNX graph of a model: how to write it and the native function it must agree with.

    ``reference`` runs the native model (PyTorch module, scikit-learn estimator) on
    ``parity_inputs`` and returns its outputs in graph order. ``max_exceed_fraction`` is 0 for
    networks; tree ensembles may flip a split at a float32 threshold, so they get a small budget.
    ``rtol`` is for outputs in the hundreds or more, where float32 rounding alone exceeds the
    absolute tolerance (a difference passes when within ``PARITY_ATOL + rtol * |native|``).
    """

    file: str
    write: Callable[[Path], None]
    reference: Callable[[Arrays], Sequence[np.ndarray]]
    parity_inputs: Arrays
    units: dict[str, str] = field(default_factory=dict)
    max_exceed_fraction: float = 0.0
    rtol: float = 0.0
    # A copy of another graph that may serve in its place (int8): listed under the card's
    # ``variants``, compared with that graph by top-1 class rather than by value, and evaluated too.
    variant_of: str | None = None


class Stopwatch:
    """Wall-clock and process CPU time of a block: the card's sustainability figures for the
    trainings without an epoch loop (the PyTorch loop times its epochs itself: ``FitResult``)."""

    def __enter__(self) -> "Stopwatch":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_exc) -> None:
        self.wall_seconds = round(time.perf_counter() - self._wall, 2)
        self.cpu_seconds = round(time.process_time() - self._cpu, 2)

    def as_card(self) -> dict[str, Any]:
        return {"wall_seconds": self.wall_seconds, "cpu_seconds": self.cpu_seconds, "device": "cpu"}


def torch_writer(module, example: Arrays, output_names: Sequence[str]) -> Callable[[Path], None]:
    """Writer exporting a PyTorch module with every input and output batch-dynamic."""
    import torch

    def write(path: Path) -> None:
        module.eval()
        args = tuple(torch.from_numpy(value) for value in example.values())
        batch = torch.export.Dim("batch")
        torch.onnx.export(
            module, args, str(path), input_names=list(example), output_names=list(output_names),
            dynamic_shapes=tuple({0: batch} for _ in args), external_data=False, verbose=False,
        )

    return write


def torch_reference(module) -> Callable[[Arrays], list[np.ndarray]]:
    """The module run eagerly with a graph's calling convention: feeds in input order -> outputs."""
    import torch

    def run(inputs: Arrays) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(*(torch.from_numpy(value) for value in inputs.values()))
        return [tensor.numpy() for tensor in (out if isinstance(out, tuple) else (out,))]

    return run


def torch_graph(module, file: str, parity_inputs: Arrays, output_names: Sequence[str],
                units: dict[str, str] | None = None) -> Graph:
    """A graph of a PyTorch module whose parity reference is the module itself: exported from the
    first two parity rows, checked on all of them."""
    example = {key: value[:2] for key, value in parity_inputs.items()}
    return Graph(file=file, write=torch_writer(module, example, output_names), reference=torch_reference(module),
                 parity_inputs=parity_inputs, units=units or {})


def sklearn_writer(estimator, input_name: str, n_features: int, output_name: str) -> Callable[[Path], None]:
    """Writer converting a scikit-learn regressor with skl2onnx (float32 input, dynamic batch)."""
    from skl2onnx.common.data_types import FloatTensorType

    return _skl2onnx_writer(estimator, input_name, n_features, [(output_name, FloatTensorType([None, 1]))])


def sklearn_classifier_writer(estimator, input_name: str, n_features: int, classes: int) -> Callable[[Path], None]:
    """Writer converting a scikit-learn classifier (or a pipeline ending in one): outputs ``label``
    (int64) and ``probabilities`` (float32, one column per class), a plain tensor rather than
    ZipMap's list of dictionaries."""
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

    return _skl2onnx_writer(estimator, input_name, n_features,
                            [("label", Int64TensorType([None])), ("probabilities", FloatTensorType([None, classes]))],
                            options={"zipmap": False})


def _skl2onnx_writer(estimator, input_name: str, n_features: int, outputs: list, **conversion: Any
                     ) -> Callable[[Path], None]:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    def write(path: Path) -> None:
        model = to_onnx(estimator, initial_types=[(input_name, FloatTensorType([None, n_features]))],
                        final_types=outputs, target_opset={"": 17, "ai.onnx.ml": 3}, **conversion)
        path.write_bytes(model.SerializeToString())

    return write


def int8_graph(source: Graph, calibration: Arrays) -> Graph:
    """The static int8 (QDQ) copy of ``source`` (a classifier whose first output is class scores),
    calibrated on ``calibration`` (training rows), for the card's ``variants``. Its parity is top-1
    agreement with the fp32 graph where the fp32 graph is not near a tie (``serving.repository.variants``)."""
    from .quantize import write_int8_qdq

    staged: dict[str, Path] = {}
    (input_name, inputs), = calibration.items()

    def write(path: Path) -> None:
        staged["source"] = path.parent / source.file  # the export step writes the source graph first
        write_int8_qdq(staged["source"], path, input_name, inputs)

    def reference(feeds: Arrays) -> list[np.ndarray]:
        return cpu_session(staged["source"]).run(None, feeds)

    file = source.file.removesuffix(".onnx") + ".int8.onnx"
    return Graph(file=file, write=write, reference=reference, parity_inputs=source.parity_inputs,
                 units=source.units, max_exceed_fraction=copies.MAX_FLIP_FRACTION, variant_of="model")


def cpu_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_parity(session: ort.InferenceSession, graph: Graph) -> dict[str, Any]:
    """Compare every output of the ONNX graph with the native model on held-out inputs."""
    onnx_outputs = session.run(None, graph.parity_inputs)
    native_outputs = graph.reference(graph.parity_inputs)
    report: dict[str, Any] = {"rows": int(len(next(iter(graph.parity_inputs.values())))), "atol": PARITY_ATOL,
                              "rtol": graph.rtol}
    if graph.variant_of is not None:
        return _check_top1(graph, onnx_outputs[0], np.asarray(native_outputs[0]))
    worst, exceeding = 0.0, 0
    for onnx_out, native_out in zip(onnx_outputs, native_outputs, strict=True):
        native = np.asarray(native_out, np.float64)
        diff = np.abs(np.asarray(onnx_out, np.float64) - native)
        worst = max(worst, float(diff.max(initial=0.0)))
        over = diff > PARITY_ATOL + graph.rtol * np.abs(native)
        exceeding = max(exceeding, int(over.reshape(len(over), -1).any(axis=1).sum()))
    report.update(max_abs_diff=worst, rows_over_atol=exceeding)
    allowed = int(np.floor(graph.max_exceed_fraction * report["rows"]))
    if exceeding > allowed:
        raise ExportError(
            f"{graph.file}: ONNX Runtime differs from the native model by up to {worst:.3g} "
            f"on {exceeding}/{report['rows']} rows (allowed: {allowed} rows over atol {PARITY_ATOL}, rtol {graph.rtol})"
        )
    return report


def keeps_accuracy(variant: dict[str, Any], graph: dict[str, Any]) -> bool:
    return variant["test_accuracy"] > graph["test_accuracy"] - MAX_VARIANT_ACCURACY_DROP


def _check_top1(graph: Graph, scores: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """A quantised copy is judged by the class it picks, not by value (int8 moves scores by tenths)."""
    agreement = copies.agreement(scores, reference, copies.tie_tolerance(scores, reference), graph.max_exceed_fraction)
    if not agreement.holds:
        raise VariantLeftOut(agreement.describe(graph.file))
    return agreement.as_card()


def _variant_check(staging: Path, graph: Graph, tolerance: float) -> dict[str, Any]:
    """Store a kept variant's first parity rows with the fp32 graph's scores, for the registry to rerun
    on the CPU that serves it (``serving.repository.variants``)."""
    inputs = {key: value[:copies.CHECK_ROWS] for key, value in graph.parity_inputs.items()}
    path = staging / (graph.file.removesuffix(".onnx") + ".check.npz")
    copies.write_check(path, inputs, np.asarray(graph.reference(inputs)[0]))
    return {"file": path.name, "sha256": sha256_of(path), "tie_tolerance": tolerance,
            "max_flip_fraction": graph.max_exceed_fraction}


def _tensor_schema(values, units: dict[str, str]) -> list[dict[str, Any]]:
    schema = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim]
        entry = {"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
                 "shape": shape}
        if value.name in units:
            entry["unit"] = units[value.name]
        schema.append(entry)
    return schema


def export_model(
    name: str,
    graphs: dict[str, Graph],
    evaluate: Callable[[Sessions], dict[str, Any]],
    card: dict[str, Any],
    out_root: Path | None = None,
    calibrate: Callable[[Sessions], dict[str, Any]] = lambda _sessions: {},
) -> dict[str, Any]:
    """Export, check and evaluate every graph, then publish them as the next version of ``models/<name>/``
    (``serving.repository.layout``: the whole version appears at once, earlier versions stay).

    ``card`` carries what only the family knows (task, profile, seed, data sizes, preprocessing,
    labels, training time); this step adds graphs, sha256, schema, parity and metrics.
    Graphs that are variants of another (int8) go under ``variants`` with their own metrics;
    ``served_variant`` names the one that keeps the accuracy, which the service then runs in its
    graph's place. A variant that fails its parity is left out (``variants_left_out`` says why),
    never the model. ``calibrate`` computes card sections that serving reads (intervals,
    temperature, novelty) by running the exported graphs as they will serve: the served variant
    in its graph's place.
    """
    out_root = out_root or models_dir()
    with layout.staging(out_root, name) as staging:
        sessions, graph_cards, left_out = {}, {}, {}
        for key, graph in graphs.items():
            path = staging / graph.file
            graph.write(path)
            model = onnx.load(str(path))
            onnx.checker.check_model(model, full_check=True)
            session = cpu_session(path)
            try:
                parity = check_parity(session, graph)
            except VariantLeftOut as error:
                print(f"{name}: {error}; the variant is left out and {graph.variant_of} serves", flush=True)
                left_out[key] = str(error)
                path.unlink()
                continue
            sessions[key] = session
            graph_cards[key] = {
                "file": graph.file,
                "sha256": sha256_of(path),
                "bytes": path.stat().st_size,
                "opset": max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")),
                "inputs": _tensor_schema(model.graph.input, graph.units),
                "outputs": _tensor_schema(model.graph.output, graph.units),
                "parity": parity,
            }
            if graph.variant_of is not None:
                graph_cards[key]["check"] = _variant_check(staging, graph, parity["tie_tolerance"])
        variants = {key: {**graph_cards.pop(key), "of": graph.variant_of} for key, graph in graphs.items()
                    if graph.variant_of is not None and key in graph_cards}
        for key, variant in variants.items():  # before the graph itself: the plots left are the served fp32's
            variant["metrics"] = evaluate({**sessions, variant["of"]: sessions[key]})
        metrics = evaluate(sessions)
        served = next((key for key, variant in variants.items() if keeps_accuracy(variant["metrics"], metrics)), None)
        # Calibrated on what will serve: the temperature and the novelty threshold of an int8 copy
        # are its own, not its fp32 graph's.
        calibration = calibrate(sessions if served is None else {**sessions, variants[served]["of"]: sessions[served]})
        full_card = {
            "schema_version": contract.SCHEMA_VERSION,
            "name": name,
            "version": "",  # the version number ``layout.publish`` gives it
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **card,
            **calibration,
            "graphs": graph_cards,
            "metrics": metrics,
        }
        if variants:
            full_card["variants"] = variants
            full_card["served_variant"] = served
        if left_out:
            full_card["variants_left_out"] = left_out
        full_card.update(model_cards.sections(full_card))

        layout.publish(staging, out_root / name, full_card, contract.refusing(f"{name} card", ExportError))
    return full_card
