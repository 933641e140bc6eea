"""Cold start: seconds from launching ``bentoml serve`` to ``/readyz`` answering 200, and to the
first answers of the endpoints served by the dependency services.

Ready means every model in the models directory was verified (sha256), loaded into ONNX Runtime
and warmed up by one inference in the API service; the first digit classification and VAE
sample also need the ``Classifiers`` and ``Generators`` workers: together, what a replacement
pod costs before it can take traffic.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx

from loadtests.payloads import digit_pngs
from serving.repository import layout

from .common import Context, markdown_table
from .http_load import serve_models

OBJECTIVE_SECONDS = 15.0


def _first_answers(url: str) -> None:
    """Block until a digit is classified and a VAE sample drawn (both dependency services up)."""
    with httpx.Client(base_url=url, timeout=120) as client:
        for path, request in (("/digits/classify", {"files": {"image": ("d.png", digit_pngs()[0], "image/png")}}),
                              ("/generate/vae", {"json": {"n": 1, "seed": 0}})):
            while client.post(path, **request).status_code != 200:
                time.sleep(0.1)


def run(ctx: Context) -> dict:
    ready, answering = [], []
    with tempfile.TemporaryDirectory() as logs:
        for attempt in range(1 if ctx.smoke else 3):
            start = time.perf_counter()
            with serve_models(ctx, Path(logs) / f"cold-{attempt}.log") as url:
                ready.append(time.perf_counter() - start)
                _first_answers(url)
                answering.append(time.perf_counter() - start)
    models = layout.model_names(ctx.models_dir)
    median = statistics.median(answering)
    return {"ready_seconds": ready, "first_answers_seconds": answering,
            "median_ready_seconds": statistics.median(ready), "median_first_answers_seconds": median,
            "models": models, "objective_seconds": OBJECTIVE_SECONDS, "meets_objective": median <= OBJECTIVE_SECONDS}


def markdown(result: dict) -> str:
    def runs(values: list[float]) -> str:
        return ", ".join(f"{value:.1f}" for value in values)

    rows = [[len(result["models"]), runs(result["ready_seconds"]), result["median_ready_seconds"],
             runs(result["first_answers_seconds"]), result["median_first_answers_seconds"],
             f"{'yes' if result['meets_objective'] else 'no'} (<= {result['objective_seconds']:g} s)"]]
    return "\n".join([
        "### Cold start",
        "From `bentoml serve` to `/readyz` = 200 (every model verified, loaded and warmed up), and on to the "
        "first classified digit and VAE sample (the dependency services up too).",
        "",
        markdown_table(["models", "ready runs (s)", "median ready s", "first answers runs (s)",
                        "median first answers s", "objective met"], rows),
    ])
