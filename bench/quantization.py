"""Graph optimisation and quantisation of the CNNs: accuracy, latency and size per variant.

Each variant of the fp32 model graph (dynamic int8, static int8 QDQ calibrated on training
images, fp16) is scored on the model's test set through the serving preprocessing and timed on
real inputs; it is kept only when it loses less than 0.1 percentage point of accuracy and is
faster at every batch size. fp16 is a GPU-path optimisation: its accuracy is measured here,
its speed cannot be on this CPU.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from PIL import Image

from serving.inference.images import to_classifier_input
from training.data import load_image_folder, mnist_arrays
from training.mnist import EVAL_BATCH, normalize, validation_split
from training.quantize import quantizable, write_int8_qdq

from .common import Context, batch_sizes, load_card, markdown_table, missing, ort_session, ratio, timed, version_dir

MAX_ACCURACY_DROP_PP = 0.1
BUDGET_S = 10.0  # per measurement: EfficientNet on 32 photos takes seconds per call
BASELINE, FP16 = "fp32", "fp16"
LEVELS = {"ORT_DISABLE_ALL": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
          "ORT_ENABLE_ALL": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
LEVELS_MODEL = "mnist-cnn"


@dataclass(frozen=True)
class Dataset:
    """A classifier's preprocessed test inputs with labels, and its calibration inputs."""

    test: np.ndarray
    labels: np.ndarray
    calibration: np.ndarray
    eval_batch: int


def digits(card: dict[str, Any], smoke: bool) -> Dataset:
    """MNIST test images (a few hundred in smoke runs); calibration on training images outside
    the validation slice, normalised as training and serving do."""
    test_images, labels = mnist_arrays(train=False)
    train_images, _ = mnist_arrays(train=True)
    _, train_idx = validation_split(len(train_images), None)
    tests, calibration = (300, 16) if smoke else (len(labels), 200)
    return Dataset(normalize(test_images[:tests]), labels[:tests], normalize(train_images[train_idx[:calibration]]),
                   EVAL_BATCH)


def photos(card: dict[str, Any], smoke: bool) -> Dataset:
    """The image folder's ``val`` photos and a seeded sample of its ``train`` photos, through the
    serving preprocessing with the card's constants."""
    prep = card["preprocessing"]
    rng = np.random.default_rng(0)

    def load(samples: list[tuple[str, int]], count: int | None) -> tuple[np.ndarray, np.ndarray]:
        chosen = [samples[i] for i in rng.permutation(len(samples))[:count]]
        inputs = [to_classifier_input(Image.open(path), prep["resize"], prep["crop"], prep["mean"], prep["std"])
                  for path, _ in chosen]
        return np.stack(inputs), np.array([label for _, label in chosen])

    test, labels = load(load_image_folder("val").samples, 16 if smoke else None)
    calibration, _ = load(load_image_folder("train").samples, 4 if smoke else 100)
    return Dataset(test, labels, calibration, eval_batch=32)


MODELS: dict[str, Callable[[dict[str, Any], bool], Dataset]] = {"mnist-cnn": digits, "transfer-cnn": photos}


def _variants(source: Path, input_name: str, data: Dataset, scratch: Path) -> dict[str, Callable[[], Path]]:
    """Each variant's builder: writes the graph into ``scratch`` and returns its path."""
    plain = quantizable(source, scratch)

    def dynamic() -> Path:
        quantize_dynamic(plain, scratch / "int8-dynamic.onnx", weight_type=QuantType.QInt8)
        return scratch / "int8-dynamic.onnx"

    def static() -> Path:  # what the export step ships (training.quantize)
        write_int8_qdq(source, scratch / "int8-qdq.onnx", input_name, data.calibration)
        return scratch / "int8-qdq.onnx"

    def half() -> Path:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(plain)), keep_io_types=True), str(scratch / "fp16.onnx"))
        return scratch / "fp16.onnx"

    return {BASELINE: lambda: source, "int8 dynamic": dynamic, "int8 static QDQ": static, FP16: half}


def accuracy(session: ort.InferenceSession, input_name: str, data: Dataset) -> float:
    logits = np.concatenate([session.run(None, {input_name: data.test[i:i + data.eval_batch]})[0]
                             for i in range(0, len(data.test), data.eval_batch)])
    return float((logits.argmax(axis=1) == data.labels).mean())


def latencies(session: ort.InferenceSession, input_name: str, data: Dataset, ctx: Context) -> list[dict[str, Any]]:
    """Median latency on real test inputs at each batch size."""
    return [{"batch": batch, **timed(lambda: session.run(None, {input_name: data.test[:batch]}), ctx,
                                     budget_s=BUDGET_S)}
            for batch in batch_sizes(ctx)]


def verdict(variant: dict[str, Any], baseline: dict[str, Any]) -> str:
    if -variant["accuracy_change_pp"] >= MAX_ACCURACY_DROP_PP:
        return f"rejected (accuracy {variant['accuracy_change_pp']:+.2f} pp)"
    slower = [f"{ratio(mine['median_ms'], theirs['median_ms']):.2f}x the fp32 latency at batch {mine['batch']}"
              for mine, theirs in zip(variant["latency"], baseline["latency"], strict=True)
              if mine["median_ms"] >= theirs["median_ms"]]
    return f"rejected (not faster: {'; '.join(slower)})" if slower else "keep"


def _variant(name: str, build: Callable[[], Path], input_name: str, data: Dataset, ctx: Context,
             baseline: dict[str, Any] | None) -> dict[str, Any]:
    try:
        path = build()
        session = ort_session(path, ctx)
    except Exception as error:  # a quantizer or session failure is a finding, not a crash of the benchmark
        return {"variant": name, "failed": f"{type(error).__name__}: {error}"}
    entry: dict[str, Any] = {"variant": name, "file_bytes": path.stat().st_size,
                             "accuracy": accuracy(session, input_name, data)}
    if baseline is None:
        return {**entry, "accuracy_change_pp": 0.0, "latency": latencies(session, input_name, data, ctx),
                "verdict": "baseline"}
    entry["accuracy_change_pp"] = (entry["accuracy"] - baseline["accuracy"]) * 100.0
    if name == FP16:
        return {**entry, "latency": None, "verdict": "accuracy only: fp16 is a GPU-path optimisation, its speed "
                                                     "cannot be measured on this CPU"}
    entry["latency"] = latencies(session, input_name, data, ctx)
    return {**entry, "verdict": verdict(entry, baseline)}


def quantize(name: str, ctx: Context) -> dict[str, Any]:
    card = load_card(ctx, name)
    if card is None:
        return missing(name, ctx)
    data = MODELS[name](card, ctx.smoke)
    input_name = card["graphs"]["model"]["inputs"][0]["name"]
    with tempfile.TemporaryDirectory(prefix="bench-quantization-") as scratch:
        builders = _variants(version_dir(ctx, name) / card["graphs"]["model"]["file"], input_name, data, Path(scratch))
        baseline = _variant(BASELINE, builders.pop(BASELINE), input_name, data, ctx, None)
        variants = [baseline] + [_variant(variant, build, input_name, data, ctx, baseline)
                                 for variant, build in builders.items()]
    return {"model": name, "version": card["version"], "test_images": len(data.labels),
            "calibration_images": len(data.calibration), "variants": variants}


def optimization_levels(ctx: Context) -> dict[str, Any]:
    """The fp32 model graph with ONNX Runtime's graph optimisations off and fully on."""
    card = load_card(ctx, LEVELS_MODEL)
    if card is None:
        return missing(LEVELS_MODEL, ctx)
    path = version_dir(ctx, LEVELS_MODEL) / card["graphs"]["model"]["file"]
    images = normalize(mnist_arrays(train=False)[0][:max(batch_sizes(ctx))])
    rows = []
    for batch in batch_sizes(ctx):
        row: dict[str, Any] = {"batch": batch}
        for level, value in LEVELS.items():
            session = ort_session(path, ctx, optimization=value)
            row[level] = timed(lambda: session.run(None, {"image": images[:batch]}), ctx, budget_s=BUDGET_S)
        row["disabled_over_enabled"] = ratio(row["ORT_DISABLE_ALL"]["median_ms"], row["ORT_ENABLE_ALL"]["median_ms"])
        rows.append(row)
    return {"model": LEVELS_MODEL, "batches": rows}


def run(ctx: Context) -> dict:
    return {"threads": ctx.threads, "batches": list(batch_sizes(ctx)), "max_accuracy_drop_pp": MAX_ACCURACY_DROP_PP,
            "models": [quantize(name, ctx) for name in MODELS], "optimization_levels": optimization_levels(ctx)}


def _variant_row(model: str, variant: dict[str, Any]) -> list[object]:
    if "failed" in variant:
        return [model, variant["variant"], "", "", "", "", "", f"failed: {variant['failed']}"]
    latency = ["not timed", "not timed"] if variant["latency"] is None else [
        timing["median_ms"] for timing in variant["latency"]]
    return [model, variant["variant"], f"{variant['accuracy']:.2%}", f"{variant['accuracy_change_pp']:+.2f}",
            f"{variant['file_bytes'] / 1e6:.2f}", *latency, variant["verdict"]]


def markdown(result: dict) -> str:
    first, second = result["batches"]
    rows: list[list[object]] = []
    for entry in result["models"]:
        if "skipped" in entry:
            rows.append([entry["model"], f"skipped: {entry['skipped']}", *[""] * 6])
            continue
        rows += [_variant_row(entry["model"], variant) for variant in entry["variants"]]
    levels = result["optimization_levels"]
    level_rows = [] if "skipped" in levels else [
        [row["batch"], row["ORT_DISABLE_ALL"]["median_ms"], row["ORT_ENABLE_ALL"]["median_ms"],
         row["disabled_over_enabled"]] for row in levels["batches"]]
    level_note = f" (skipped: {levels['skipped']})" if "skipped" in levels else ""
    sizes = ", ".join(f"`{entry['model']}` on {entry['test_images']} test images, int8 static calibrated on "
                      f"{entry['calibration_images']}" for entry in result["models"] if "skipped" not in entry
                      ) or "no model present"
    return "\n".join([
        "### Quantisation and graph optimisation (CNNs)",
        "",
        f"Test accuracy of each variant of the fp32 model graph ({sizes}), through the serving preprocessing; median "
        f"latency on {result['threads']} thread(s) on real inputs. A variant is kept when it loses less than "
        f"{result['max_accuracy_drop_pp']:g} percentage point and is faster at every batch size.",
        "",
        markdown_table(["model", "variant", "accuracy", "change (pp)", "size (MB)", f"batch {first} ms",
                        f"batch {second} ms", "verdict"], rows),
        "",
        f"ONNX Runtime's graph optimisations on `{levels['model']}`{level_note}, median ms per call:",
        "",
        markdown_table(["batch", "ORT_DISABLE_ALL ms", "ORT_ENABLE_ALL ms", "disabled / enabled"], level_rows),
        "",
    ])
