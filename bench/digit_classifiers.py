"""The digit classifiers side by side: the CNN and the classical ones (``training/classical.py``).

Quality comes from each card (measured on the 10,000 test digits through the exported graph);
size is the graph file's; the latency is one client's sequential ``/digits/classify`` requests,
one 28x28 test digit each as JSON ``pixels`` (the upload preprocessing included), through a
server over ``ctx.models_dir`` pinned to core 0.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from serving.repository.catalog import DIGIT_MODELS
from training.data import mnist_arrays

from .common import Context, load_card, markdown_table, missing, timed
from .http_load import client_core, serve_models


def _quality(card: dict) -> dict:
    metrics = card["metrics"]
    return {"test_accuracy": metrics["test_accuracy"], "macro_f1": metrics["macro_f1"],
            "odd_even": {key: value for key, value in metrics["odd_even"].items() if key != "confusion"},
            "graph_bytes": card["graphs"]["model"].get("bytes") or 0, "profile": card["profile"],
            "train_wall_seconds": card["training"]["wall_seconds"]}


def run(ctx: Context) -> dict:
    cards = {name: load_card(ctx, name) for name in DIGIT_MODELS}
    rows = {name: _quality(card) for name, card in cards.items() if card is not None}
    pixels = mnist_arrays(train=False)[0][0].astype(float).tolist()
    with tempfile.TemporaryDirectory() as logs, client_core():
        with serve_models(ctx, Path(logs) / "digits.log") as url, httpx.Client(base_url=url, timeout=60) as client:
            for name in rows:
                body = {"pixels": pixels, "model": name}
                rows[name]["request"] = timed(lambda: client.post("/digits/classify", json=body).raise_for_status(),
                                              ctx)
    return {"models": rows, "skipped": [missing(name, ctx) for name, card in cards.items() if card is None]}


def markdown(result: dict) -> str:
    headers = ["model", "test accuracy", "macro F1", "odd/even accuracy", "precision", "recall", "specificity",
               "F1", "ROC AUC", "graph MB", "request median ms", "p90 ms", "training s"]
    rows = [[name, row["test_accuracy"], row["macro_f1"], *(row["odd_even"][key] for key in
             ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")),
             row["graph_bytes"] / 1e6, row["request"]["median_ms"], row["request"]["p90_ms"], row["train_wall_seconds"]]
            for name, row in result["models"].items()]
    return "\n".join([
        "### Digit classifiers",
        "Quality from each card (10,000 test digits through the graph); one client's sequential "
        "`/digits/classify` requests with one digit as JSON pixels.",
        "",
        markdown_table(headers, rows),
    ])
