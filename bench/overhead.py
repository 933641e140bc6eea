"""Where a request's time goes: a no-op endpoint, ``/house-price/predict`` and the ONNX Runtime
call alone, one client, one house, sequential requests.

``/noop`` costs HTTP, BentoML's routing and ZooServe's middlewares; the house endpoint adds
pydantic validation, the model call and the answer's serialisation; the in-process call is the
model alone, on a session built by the service's own session factory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import numpy as np

from loadtests.payloads import houses
from serving.repository.registry import read_verified_card
from serving.repository.sessions import make_session
from serving.settings import Settings

from .common import Context, markdown_table, timed, version_dir
from .http_load import client_core, serve_models

MODEL = "house-price-gbm"


def _in_process(ctx: Context):
    """The served model's call, as the service makes it, on the first test house."""
    version = version_dir(ctx, MODEL)
    card = read_verified_card(version)
    session = make_session(version / card.graphs["model"].file, Settings(models_dir=ctx.models_dir))
    spec = card.graphs["model"].inputs[0]
    row = np.array([[houses()[0][name] for name in card.preprocessing["feature_order"]]], dtype=spec.dtype)
    return lambda: session.run(None, {spec.name: row})


def run(ctx: Context) -> dict:
    house = {"houses": houses()[:1]}
    stages = {}
    with tempfile.TemporaryDirectory() as logs, client_core():
        with serve_models(ctx, Path(logs) / "overhead.log") as url, httpx.Client(base_url=url) as client:
            for name, path, body in (("no-op endpoint", "/noop", {}), ("/house-price/predict", "/house-price/predict",
                                                                         house)):
                stages[name] = timed(lambda: client.post(path, json=body).raise_for_status(), ctx)
        stages["ONNX Runtime call in-process"] = timed(_in_process(ctx), ctx)
    total = stages["/house-price/predict"]["median_ms"]
    return {"model": MODEL, "stages": stages,
            "share_of_request": {name: stage["median_ms"] / total for name, stage in stages.items()}}


def markdown(result: dict) -> str:
    rows = [[name, stage["median_ms"], stage["p90_ms"], f"{result['share_of_request'][name]:.0%}"]
            for name, stage in result["stages"].items()]
    return "\n".join([
        "### Serving overhead",
        f"One client, sequential requests with one house ({result['model']}); medians after warm-up.",
        "",
        markdown_table(["stage", "median ms", "p90 ms", "share of a predict request"], rows),
    ])
