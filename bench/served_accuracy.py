"""The CNNs' test accuracy through the served path: every MNIST test digit uploaded as a PNG to
``/digits/classify`` and every test photo to ``/images/classify``, answered by whichever graph
the card has the service run (the int8 copy when it kept the accuracy), next to the accuracies
the export step measured on the fp32 graph and on the int8 copy.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import httpx
import numpy as np

from serving.inference.images import png
from training.data import load_image_folder, mnist_arrays

from .common import Context, load_card, markdown_table, missing
from .http_load import client_core, serve_models

CLIENTS = 4


def _digit_requests(smoke: bool) -> tuple[list[Callable[[httpx.Client], str]], list[str]]:
    pictures, labels = mnist_arrays(train=False)
    count = 50 if smoke else len(labels)

    def upload(picture: np.ndarray) -> Callable[[httpx.Client], str]:
        return lambda client: str(client.post("/digits/classify", files={"image": ("d.png", png(picture))})
                                  .raise_for_status().json()["digit"])
    return [upload(picture) for picture in pictures[:count]], [str(label) for label in labels[:count]]


def _photo_requests(smoke: bool, labels: list[str]) -> tuple[list[Callable[[httpx.Client], str]], list[str]]:
    samples = load_image_folder("val").samples[:: 15 if smoke else 1]

    def upload(path: str) -> Callable[[httpx.Client], str]:
        def send(client: httpx.Client) -> str:
            with open(path, "rb") as handle:
                answer = client.post("/images/classify", files={"image": ("p.jpg", handle)}, data={"top_k": "1"})
            return answer.raise_for_status().json()["predictions"][0]["label"]
        return send
    return [upload(path) for path, _ in samples], [labels[label] for _, label in samples]


def _accuracy(url: str, requests: list[Callable[[httpx.Client], str]], truth: list[str]) -> float:
    """The share answered right, over ``CLIENTS`` kept-alive clients (one per thread)."""
    clients = [httpx.Client(base_url=url, timeout=60) for _ in range(CLIENTS)]
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            predicted = list(pool.map(lambda job: job[1](clients[job[0] % CLIENTS]), enumerate(requests)))
    finally:
        for client in clients:
            client.close()
    return float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))


def run(ctx: Context) -> dict:
    cards = {name: load_card(ctx, name) for name in ("mnist-cnn", "transfer-cnn")}
    rows = {}
    with tempfile.TemporaryDirectory() as logs, client_core(), serve_models(ctx, Path(logs) / "served.log") as url:
        for name, card in cards.items():
            if card is None:
                continue
            requests, truth = (_digit_requests(ctx.smoke) if name == "mnist-cnn"
                               else _photo_requests(ctx.smoke, card["labels"]))
            variant = card.get("served_variant")
            rows[name] = {"served": variant or "model", "requests": len(requests),
                          "served_accuracy": _accuracy(url, requests, truth),
                          "card_fp32_accuracy": card["metrics"]["test_accuracy"],
                          "card_int8_accuracy": card.get("variants", {}).get("model_int8", {}).get(
                              "metrics", {}).get("test_accuracy")}
    return {"models": rows, "skipped": [missing(name, ctx) for name, card in cards.items() if card is None]}


def markdown(result: dict) -> str:
    rows = [[name, row["served"], row["requests"], row["served_accuracy"], row["card_fp32_accuracy"],
             row["card_int8_accuracy"] if row["card_int8_accuracy"] is not None else "-"]
            for name, row in result["models"].items()]
    return "\n".join([
        "### Test accuracy through the served path",
        "Every test picture uploaded to the classify endpoint (PNG digits, JPEG photos), answered by the graph "
        "the card selects; the card's accuracies are the export step's, on the fp32 graph and its int8 copy.",
        "",
        markdown_table(["model", "served graph", "test pictures", "served accuracy", "card: fp32", "card: int8"],
                       rows),
    ])
