"""The whole zoo's memory: ZooServe serving every model of the models directory, the resident
memory of each process (supervisor, API worker, generation worker) idle and after answers from
every model. The objective: under 500 MB RSS in all, with every quick-profile model served.

RSS counts the pages of shared libraries once per process (the conservative sum the objective is
set on); PSS shares them out between the processes that map them; USS is a process's own.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from loadtests.payloads import digit_pngs, houses, passenger_history, photos
from loadtests.server import free_port, start, stop, wait_ready
from loadtests.soak import process_name
from serving.repository import layout
from serving.repository.catalog import FAMILY_MODELS

from .common import Context, markdown_table

OBJECTIVE_RSS_MB = 500
SETTLE_SECONDS = 5  # start-up's last allocations (warm-ups, the workers following the control file)
REQUESTS, SMOKE_REQUESTS = 20, 2  # per endpoint: enough for the allocators' working sets, not a load test


def processes(root: psutil.Process) -> list[dict]:
    """Each process of the server by name, with its RSS, PSS and USS in MB."""
    rows = []
    for process in [root, *root.children(recursive=True)]:
        info = process.memory_full_info()
        rows.append({"process": process_name(process), "rss_mb": info.rss / 2**20, "pss_mb": info.pss / 2**20,
                     "uss_mb": info.uss / 2**20})
    return rows


def _total(rows: list[dict], key: str) -> float:
    return sum(row[key] for row in rows)


def _answers(client: httpx.Client, names: list[str], requests: int) -> None:
    """Answers from every model present: its endpoint (generation at 16 images) and its /v2 call."""
    calls = []
    if "mnist-cnn" in names:
        calls.append(("/digits/classify", {"files": {"image": ("d.png", digit_pngs()[0], "image/png")}}))
    if "transfer-cnn" in names:
        calls.append(("/images/classify", {"files": {"image": ("p.jpg", photos()[0], "image/jpeg")}}))
    if "house-price-gbm" in names:
        calls.append(("/house-price/predict", {"json": {"houses": houses()[:16]}}))
    if "passengers" in names:
        calls.append(("/passengers/forecast", {"json": {"history": passenger_history()[-36:], "horizon": 12}}))
    for family, model in FAMILY_MODELS.items():
        if model in names:
            calls.append((f"/generate/{family}", {"json": {"n": 16, "seed": 0}}))
    for name in names:
        metadata = client.get(f"/v2/models/{name}").json()
        inputs = [{"name": tensor["name"], "datatype": tensor["datatype"],
                   "shape": [1 if d == -1 else d for d in tensor["shape"]],
                   "data": [0] * int(np.prod([1 if d == -1 else d for d in tensor["shape"]]))}
                  for tensor in metadata["inputs"]]
        calls.append((f"/v2/models/{name}/infer", {"json": {"inputs": inputs}}))
    for path, request in calls:
        for _ in range(requests):
            response = client.post(path, **request)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")


def run(ctx: Context) -> dict:
    names = layout.model_names(ctx.models_dir)
    requests = SMOKE_REQUESTS if ctx.smoke else REQUESTS
    port = free_port()
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "serve.log"
        process = start(port, log, {"ZOOSERVE_MODELS_DIR": str(ctx.models_dir.resolve())})
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process, log)
            server = psutil.Process(process.pid)
            time.sleep(SETTLE_SECONDS)
            idle = processes(server)
            with httpx.Client(base_url=url, timeout=300) as client:
                _answers(client, names, requests)
            after = processes(server)
        finally:
            stop(process)
    total = _total(idle, "rss_mb")
    return {"models": names, "idle": idle, "after_answers": after, "requests_per_endpoint": requests,
            "idle_rss_mb": total, "after_rss_mb": _total(after, "rss_mb"), "objective_rss_mb": OBJECTIVE_RSS_MB,
            "meets_objective": total < OBJECTIVE_RSS_MB}


def markdown(result: dict) -> str:
    rows = []
    for state, label in (("idle", "idle"), ("after_answers", "after the answers")):
        for row in result[state]:
            rows.append([label, row["process"], row["rss_mb"], row["pss_mb"], row["uss_mb"]])
        rows.append([label, "**all**", _total(result[state], "rss_mb"), _total(result[state], "pss_mb"),
                     _total(result[state], "uss_mb")])
    table = markdown_table(["state", "process", "RSS MB", "PSS MB", "USS MB"], rows)
    verdict = "yes" if result["meets_objective"] else "no"
    return (f"### The whole zoo's memory\n\nZooServe serving {len(result['models'])} models; each process idle, "
            f"then after {result['requests_per_endpoint']} answers from each endpoint and each model's `/v2` call.\n\n"
            f"{table}\n\nIdle RSS under {result['objective_rss_mb']} MB: {verdict} "
            f"({result['idle_rss_mb']:.0f} MB; {result['after_rss_mb']:.0f} MB after the answers).")
