"""``python -m serving.add model.onnx --name my-model``: serve any ONNX model over ``/v2``.

The graph is read by ONNX Runtime (its inputs and outputs, their types and shapes), run once on
inputs of its declared types and shapes to check it loads and answers as declared, and published
into the models directory as the next version of ``--name`` with a card of task ``onnx-model``
(which serving answers on ``/v2`` only). A running server with ``ZOOSERVE_WATCH=on`` serves it at
once; otherwise load it (``POST /v2/repository/models/<name>/load``) or restart. A graph with a
tensor type ``/v2`` cannot carry is refused, naming the tensor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from serving.repository import card as contract
from serving.repository import layout
from serving.repository.catalog import SERVED_BY_ENDPOINTS

TASK = "onnx-model"
# ONNX Runtime's tensor types /v2 carries (``serving.protocol.oip.DATATYPES``), as NumPy names them.
DTYPES = {"tensor(bool)": "bool", "tensor(uint8)": "uint8", "tensor(int32)": "int32", "tensor(int64)": "int64",
          "tensor(float16)": "float16", "tensor(float)": "float32", "tensor(double)": "float64"}
CHECK_ROWS = 2  # the size given to each dynamic dimension in the check run


class AddError(ValueError):
    """A graph this command will not publish; the message says why."""


def _tensors(args: list[Any], role: str) -> list[dict[str, Any]]:
    specs = []
    for arg in args:
        if arg.type not in DTYPES:
            raise AddError(f"{role} {arg.name!r} is {arg.type}: /v2 carries only "
                           f"{', '.join(sorted(set(DTYPES.values())))} tensors")
        specs.append({"name": arg.name, "dtype": DTYPES[arg.type],
                      "shape": [dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape]})
    return specs


def _check_run(session: ort.InferenceSession, inputs: list[dict], outputs: list[dict]) -> dict[str, Any]:
    """One run on seeded inputs of the declared types and shapes: the graph loads, answers, and its
    outputs have the declared types and ranks."""
    rng = np.random.default_rng(0)
    feeds = {spec["name"]: rng.uniform(0, 2, [CHECK_ROWS if d < 0 else d for d in spec["shape"]]).astype(spec["dtype"])
             for spec in inputs}
    results = session.run(None, feeds)
    for spec, value in zip(outputs, results):
        if value.dtype.name != spec["dtype"] or value.ndim != len(spec["shape"]):
            raise AddError(f"output {spec['name']!r}: the run gave {value.dtype.name} with {value.ndim} dimensions, "
                           f"the graph declares {spec['dtype']} with {len(spec['shape'])}")
    return {"check": "one ONNX Runtime run (CPU) on seeded inputs of the declared types and shapes; no native "
                     "model to compare with", "rows": CHECK_ROWS,
            "outputs_finite": bool(all(np.isfinite(value).all() for value in results if value.dtype.kind == "f"))}


def add(graph: Path, name: str, models_dir: Path, labels: list[str] | None = None) -> dict[str, Any]:
    """Publish ``graph`` as the next version of ``name`` in ``models_dir``; returns its card."""
    if name in SERVED_BY_ENDPOINTS:
        raise AddError(f"{name!r} is the name of a model the REST endpoints serve; choose another")
    try:
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime raises its own types, one per failure
        raise AddError(f"ONNX Runtime cannot load {graph}: {error}") from None
    inputs, outputs = _tensors(session.get_inputs(), "input"), _tensors(session.get_outputs(), "output")
    parity = _check_run(session, inputs, outputs)
    metadata = session.get_modelmeta()
    with layout.staging(models_dir, name) as staging:
        shutil.copyfile(graph, staging / "model.onnx")
        with (staging / "model.onnx").open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        card = {"schema_version": contract.SCHEMA_VERSION, "name": name, "version": "",
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "task": TASK,
                "source": {"file": str(graph.resolve()), "producer": metadata.producer_name,
                           "graph_name": metadata.graph_name, "description": metadata.description},
                "graphs": {"model": {"file": "model.onnx", "sha256": digest, "bytes": graph.stat().st_size,
                                     "opset": _opset(graph), "inputs": inputs, "outputs": outputs,
                                     "parity": parity}},
                "metrics": {}, **({"labels": labels} if labels else {})}
        layout.publish(staging, models_dir / name, card, contract.refusing(f"{name} card", AddError))
    return card


def _opset(graph: Path) -> int:
    """The default-domain opset the graph imports; 0 where ``onnx`` (not a serving dependency, but in
    the development environment) is not installed to read it."""
    try:
        import onnx
    except ImportError:
        return 0
    model = onnx.load(str(graph), load_external_data=False)
    return max((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.add", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("graph", type=Path, help="an ONNX file")
    parser.add_argument("--name", required=True, help="the model's name: lower-case letters, digits and dashes")
    parser.add_argument("--labels", default=None, help="comma-separated class names, kept in the card")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: $ZOOSERVE_MODELS_DIR or models/")
    args = parser.parse_args(argv)
    models_dir = args.models_dir or Path(os.environ.get("ZOOSERVE_MODELS_DIR", "models"))
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    try:
        card = add(args.graph, args.name, models_dir, labels)
    except (AddError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    inputs = ", ".join(f"{t['name']} {t['dtype']}{t['shape']}" for t in card["graphs"]["model"]["inputs"])
    print(f"{args.name}: published version {card['version']} in {models_dir / args.name} ({inputs}); "
          f"served on /v2/models/{args.name} once loaded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
