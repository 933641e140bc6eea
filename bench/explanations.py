"""Explanations through the served endpoints: what they cost and whether they point at what matters.

Houses: the time of ``/house-price/explain`` for one and eight houses per model, and the largest
additivity error (baseline + attributions - value) over test houses. Digits: the erasure check:
the ink where the occlusion map is above half its maximum is erased from test digits, and as much
ink where it is lowest, and the share of answers that change is counted for each. The novelty
flags' figures are the export step's, read from the cards.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from training.data import HOUSING_FEATURES, california_housing_split, mnist_arrays

from .common import Context, load_card, markdown_table
from .http_load import client_core, serve_models

HOUSE_MODELS = {"gbm": "house-price-gbm", "mlp": "house-price-mlp"}
NOVELTY_MODELS = ("house-price-gbm", "house-price-mlp", "mnist-cnn", "transfer-cnn")


def erasure(client: httpx.Client, digits: np.ndarray) -> dict[str, float]:
    """The share of ``digits`` (uint8, N x 28 x 28) whose answer changes when the ink the map
    highlights is erased, and when as much ink where the map is lowest is."""
    changed = {"highlighted": 0, "least_evidence": 0}
    erased = []
    for digit in digits:
        body = client.post("/digits/explain", json={"pixels": digit.tolist()}).raise_for_status().json()
        fall, inked = np.array(body["occlusion"]["values"]), digit > 0
        highlighted = (fall > 0.5 * fall.max()) & inked
        lowest = np.argsort(np.where(inked, fall, np.inf), axis=None)[:highlighted.sum()]
        erasures = {"highlighted": highlighted,
                    "least_evidence": np.isin(np.arange(digit.size), lowest).reshape(digit.shape)}
        for name, erase in erasures.items():
            answer = client.post("/digits/classify", json={"pixels": np.where(erase, 0, digit).tolist()})
            changed[name] += answer.status_code != 200 or answer.json()["digit"] != body["digit"]
        erased.append(highlighted.sum() / max(inked.sum(), 1))
    return {"digits": len(digits), **{name: count / len(digits) for name, count in changed.items()},
            "ink_erased": float(np.mean(erased))}


def _median_ms(send, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        send()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _houses(client: httpx.Client, smoke: bool) -> dict[str, dict[str, float]]:
    x = california_housing_split().x_test
    houses = [dict(zip(HOUSING_FEATURES, map(float, row))) for row in x[:40 if smoke else 400]]
    rows = {}
    for model, name in HOUSE_MODELS.items():
        def explain(chosen: list[dict]) -> dict:
            answer = client.post("/house-price/explain", json={"houses": chosen, "model": model})
            return answer.raise_for_status().json()
        worst = max(abs(e["baseline"] + sum(e["attributions"].values()) - e["value"])
                    for start in range(0, len(houses), 8) for e in explain(houses[start:start + 8])["explanations"])
        repeats = 3 if smoke else 15
        rows[name] = {"one_house_ms": _median_ms(lambda: explain(houses[:1]), repeats),
                      "eight_houses_ms": _median_ms(lambda: explain(houses[:8]), repeats),
                      "houses_checked": len(houses), "additivity_max_error": worst}
    return rows


def run(ctx: Context) -> dict:
    digits = mnist_arrays(train=False)[0][:10 if ctx.smoke else 200]
    with tempfile.TemporaryDirectory() as logs, client_core(), serve_models(ctx, Path(logs) / "served.log") as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            houses = _houses(client, ctx.smoke)
            explain_ms = _median_ms(lambda: client.post("/digits/explain", json={"pixels": digits[0].tolist()}),
                                    3 if ctx.smoke else 15)
            digits_result = {**erasure(client, digits), "explain_ms": explain_ms}
    cards = {name: load_card(ctx, name) for name in NOVELTY_MODELS}
    novelty = {name: card["novelty"] for name, card in cards.items() if card is not None and card.get("novelty")}
    return {"houses": houses, "digits": digits_result, "novelty": novelty}


def markdown(result: dict) -> str:
    digits = result["digits"]
    novelty_rows = [[name, section["threshold_rule"], section["test_flagged"], section["auroc"],
                     ", ".join(f"{kind} {row['auroc']:.3f} ({row['flagged']:.0%} flagged)"
                               for kind, row in section["outside"].items())]
                    for name, section in result["novelty"].items()]
    return "\n".join([
        "### Explanations and novelty flags",
        "House explanations: exact Shapley values (256 coalitions x 32 background rows per house) through "
        "`/house-price/explain`; the additivity error is the largest |baseline + sum - value| over the test houses.",
        "",
        markdown_table(["model", "1 house (ms)", "8 houses (ms)", "test houses", "additivity max error"],
                       [[name, row["one_house_ms"], row["eight_houses_ms"], row["houses_checked"],
                         row["additivity_max_error"]] for name, row in result["houses"].items()]),
        "",
        f"Digit occlusion maps (`/digits/explain`, {digits['explain_ms']:.1f} ms each): erasing the ink the map "
        f"highlights (above half its maximum, {digits['ink_erased']:.0%} of the ink on average) changed the answer "
        f"for {digits['highlighted']:.0%} of {digits['digits']} test digits; erasing as much ink where the map is "
        f"lowest changed {digits['least_evidence']:.0%}.",
        "",
        markdown_table(["model", "threshold", "test flagged", "AUROC (all foreign)", "per kind"], novelty_rows),
    ])
