"""ONNX Runtime against PyTorch eager, and against ``torch.compile`` (inductor, CPU) for the CNNs
and the diffusion U-Net: the same weights, the same thread count, per model.

The served graph is timed when the module can take its weights (``bench.pytorch``); where the
exporter folded BatchNorm away, the module is exported afresh and that graph is timed, so the
engines always compute with identical weights. Outputs are compared before anything is timed.
The compiled module is compiled for each batch size at its first call (``dynamic=False``: the
strongest code inductor makes for a shape); that call's time is reported apart, as ``compile_s``.
Smoke runs compile nothing (a compile takes tens of seconds).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from serving.inference.ddim import NULL_LABEL
from training.export import torch_reference
from training.loop import torch_threads
from training.passengers import windows_and_next

from . import pytorch
from .common import (AGREEMENT_ATOL, Context, agreement, batch_sizes, first_call, load_card, markdown_table, missing,
                     ort_session, ratio, throughput, timed, version_dir)

OBJECTIVES = {"mnist-cnn": {1: 2.5, 32: 2.0}}  # the issue: ORT at least this many times faster than eager
BUDGET_S = 10.0  # per measurement: EfficientNet on 32 photos takes seconds per call
NOT_COMPARED = {"house-price-gbm": "only its ONNX graph is stored, not the scikit-learn estimator, so the "
                                   "same trees cannot run in scikit-learn without retraining"}

COMPILED = ("mnist-cnn", "transfer-cnn", "diffusion")  # compiled beside eager, at COMPILED_BATCHES
COMPILED_BATCHES = (1, 16, 32, 64)

Card = pytorch.Card
Feeds = pytorch.Feeds
Runner = pytorch.Runner


def schema_feeds(card: Card, batch: int, rng: np.random.Generator) -> Feeds:
    """Standard-normal float inputs shaped by the card's schema, the batch axis set to ``batch``."""
    return {spec["name"]: rng.standard_normal([batch if dim == -1 else dim for dim in spec["shape"]],
                                              dtype=np.float32)
            for spec in card["graphs"]["model"]["inputs"]}


def latent_feeds(card: Card, batch: int, rng: np.random.Generator) -> Feeds:
    """A generator's or decoder's inputs: standard-normal latents, and labels in range where the
    graph takes one (a digit, or a self-conditioned GAN's cluster)."""
    feeds = schema_feeds(card, batch, rng)
    sampling = card["sampling"]
    if sampling.get("label_input"):
        classes = len(sampling.get("label_weights") or range(10))
        feeds[sampling["label_input"]] = rng.integers(0, classes, batch)
    return feeds


def passenger_windows(card: Card, batch: int, rng: np.random.Generator) -> Feeds:
    """Real windows of the card's series: the graph takes logs, so inputs must be positive."""
    windows, _ = windows_and_next(np.asarray(card["series"]["values"]), card["preprocessing"]["window"])
    return {"window": windows[rng.integers(0, len(windows), batch)]}


def noisy_digits(card: Card, batch: int, rng: np.random.Generator) -> Feeds:
    """Noise-predictor inputs: noisy images, training timesteps and labels (the null one included)."""
    return {"x": rng.standard_normal((batch, 1, 28, 28), dtype=np.float32),
            "t": rng.integers(0, card["sampling"]["schedule"]["train_steps"], batch),
            "label": rng.integers(0, NULL_LABEL + 1, batch)}


MODELS: dict[str, Callable[[Card, int, np.random.Generator], Feeds]] = {
    "mnist-cnn": schema_feeds, "transfer-cnn": schema_feeds, "house-price-mlp": schema_feeds,
    "passengers": passenger_windows, "vae": latent_feeds, "gan": latent_feeds, "diffusion": noisy_digits,
}


def _graph_for(name: str, card: Card, module: nn.Module, ctx: Context, scratch: Path) -> tuple[Path, str]:
    """The served graph when the module took its weights, else a fresh export of the module."""
    served = version_dir(ctx, name) / card["graphs"]["model"]["file"]
    if pytorch.load_served_weights(module, served):
        return served, pytorch.SERVED
    example = MODELS[name](card, 2, np.random.default_rng(0))
    outputs = [spec["name"] for spec in card["graphs"]["model"]["outputs"]]
    return pytorch.fresh_export(module, example, outputs, scratch / f"{name}.onnx"), pytorch.FRESH


def _batch(name: str, batch: int, feeds: Feeds, session, eager: Runner, compiled: Runner | None,
           ctx: Context) -> dict[str, Any]:
    reference = eager(feeds)
    check = agreement(reference, session.run(None, feeds))
    row: dict[str, Any] = {"batch": batch, "agreement": check}
    if not check["agree"]:
        return {**row, "skipped": "the engines' outputs disagree: timings would compare different computations"}
    runners: dict[str, Callable[[], object]] = {"onnxruntime": lambda: session.run(None, feeds),
                                                "pytorch": lambda: eager(feeds)}
    if compiled is not None:
        outputs, row["compile_s"] = first_call(lambda: compiled(feeds))
        row["compiled_agreement"] = agreement(reference, outputs)
        if row["compiled_agreement"]["agree"]:
            runners["pytorch_compiled"] = lambda: compiled(feeds)
    engines = {engine: timed(run, ctx, budget_s=BUDGET_S) for engine, run in runners.items()}
    for timing in engines.values():
        timing["rows_per_s"] = throughput(timing, batch)
    row.update(engines, pytorch_over_ort=ratio(engines["pytorch"]["median_ms"], engines["onnxruntime"]["median_ms"]))
    if "pytorch_compiled" in engines:
        row["compiled_over_ort"] = ratio(engines["pytorch_compiled"]["median_ms"], engines["onnxruntime"]["median_ms"])
    target = OBJECTIVES.get(name, {}).get(batch)
    if target is not None:
        row["objective"] = {"min_ratio": target, "met": row["pytorch_over_ort"] >= target}
    return row


def compare(name: str, ctx: Context, scratch: Path) -> dict[str, Any]:
    card = load_card(ctx, name)
    if card is None:
        return missing(name, ctx)
    module = pytorch.module_for(name, card)
    path, graph = _graph_for(name, card, module, ctx, scratch)
    session, eager = ort_session(path, ctx), torch_reference(module)
    compiled = pytorch.compiled_runner(module) if name in COMPILED and not ctx.smoke else None
    rng = np.random.default_rng(0)
    batches = COMPILED_BATCHES if compiled is not None else batch_sizes(ctx)
    return {"model": name, "graph_timed": graph,
            "batches": [_batch(name, batch, MODELS[name](card, batch, rng), session, eager, compiled, ctx)
                        for batch in batches]}


def run(ctx: Context) -> dict:
    with torch_threads(ctx.threads), tempfile.TemporaryDirectory(prefix="bench-engines-") as scratch:
        models = [compare(name, ctx, Path(scratch)) for name in MODELS]
    return {"threads": ctx.threads, "batches": list(batch_sizes(ctx)), "atol": AGREEMENT_ATOL,
            "objectives": {name: {str(batch): target for batch, target in targets.items()}
                           for name, targets in OBJECTIVES.items()},
            "models": models, "not_compared": NOT_COMPARED}


def _objective(row: dict[str, Any]) -> str:
    if "objective" not in row:
        return ""
    return f"{'pass' if row['objective']['met'] else 'FAIL'} (>= {row['objective']['min_ratio']}x)"


def _compiled_cells(row: dict[str, Any]) -> list[object]:
    """compiled ms, compiled / ORT, compile s: blank where the model is not compiled."""
    if "compile_s" not in row:
        return ["", "", ""]
    if "pytorch_compiled" not in row:
        return [f"disagrees by {row['compiled_agreement']['max_abs_diff']:.2g}", "", row["compile_s"]]
    return [row["pytorch_compiled"]["median_ms"], row["compiled_over_ort"], row["compile_s"]]


def markdown(result: dict) -> str:
    rows: list[list[object]] = []
    for entry in result["models"]:
        if "skipped" in entry:
            rows.append([entry["model"], f"skipped: {entry['skipped']}", *[""] * 11])
            continue
        for row in entry["batches"]:
            if "skipped" in row:
                rows.append([entry["model"], entry["graph_timed"], row["batch"], row["agreement"]["max_abs_diff"],
                             f"skipped: {row['skipped']}", *[""] * 8])
                continue
            ort_t, torch_t = row["onnxruntime"], row["pytorch"]
            rows.append([entry["model"], entry["graph_timed"], row["batch"], row["agreement"]["max_abs_diff"],
                         ort_t["median_ms"], torch_t["median_ms"], ort_t["rows_per_s"], torch_t["rows_per_s"],
                         row["pytorch_over_ort"], *_compiled_cells(row), _objective(row)])
    notes = " ".join(f"`{name}` is not compared: {why}." for name, why in result["not_compared"].items())
    return "\n".join([
        "### ONNX Runtime vs PyTorch eager and compiled",
        "",
        f"Median latency per call after warm-up, both engines on {result['threads']} intra-op thread(s) and the "
        "same weights (the served graph when the module takes its initializers, else a fresh export of the same "
        "module with its own seeded weights, an ImageNet backbone for `transfer-cnn`), random inputs shaped by the "
        "card (real windows for `passengers`); outputs agree within "
        f"{result['atol']:g} before timing. The objective: ORT >= 2.5x eager for `mnist-cnn` at batch 1, "
        f">= 2x at batch 32. `torch.compile` (inductor, `dynamic=False`) runs the CNNs and the diffusion U-Net at "
        "batch 1, 16, 32 and 64; its first call on a batch size compiles (compile s), and its outputs must agree "
        f"with eager's too. {notes}",
        "",
        markdown_table(["model", "graph timed", "batch", "max abs diff", "ORT ms", "PyTorch ms", "ORT rows/s",
                        "PyTorch rows/s", "PyTorch / ORT", "compiled ms", "compiled / ORT", "compile s",
                        "objective"], rows),
        "",
    ])
