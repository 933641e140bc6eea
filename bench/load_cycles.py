"""Memory over load and unload: the resident memory of the server and all its workers before and
after 50 unload/load cycles of the models through ``/v2/repository`` (the objective: under 5%
growth), each measured once the workers have followed and let go of what they dropped. Each cycle unloads every model, loads it again, and sends one request to each so that the
batched and generating workers follow the swap too.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import psutil

from loadtests.payloads import digit_pngs, houses
from loadtests.server import free_port, start, stop, wait_ready
from serving.repository import layout
from serving.repository.registry import LINGER_SECONDS, WATCH_SECONDS

from .common import Context, markdown_table
from .floor import memory_mb

CYCLES, SMOKE_CYCLES = 50, 3
OBJECTIVE_GROWTH = 0.05
# The workers follow a swap within WATCH_SECONDS and keep what they dropped LINGER_SECONDS more.
SETTLE_SECONDS = LINGER_SECONDS + 2 * WATCH_SECONDS + 1


TOUCHED = {"house-price-gbm": ("/house-price/predict", lambda: {"json": {"houses": houses()[:1]}}),
           "mnist-cnn": ("/digits/classify", lambda: {"files": {"image": ("d.png", digit_pngs()[0], "image/png")}}),
           "vae": ("/generate/vae", lambda: {"json": {"n": 1, "seed": 0}})}


def _touch(client: httpx.Client, names: list[str]) -> None:
    """One answer from each worker the models have: the API worker's house prices, the batched
    digits, a sample; each must be a 200, during the cycles too."""
    for name, (path, request) in TOUCHED.items():
        if name in names:
            response = client.post(path, **request())
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")


def _settled(process: psutil.Process, client: httpx.Client, names: list[str], seconds: float) -> dict[str, float]:
    time.sleep(seconds)
    _touch(client, names)
    return memory_mb(process)


def run(ctx: Context) -> dict:
    cycles = SMOKE_CYCLES if ctx.smoke else CYCLES
    settle = 2 * WATCH_SECONDS if ctx.smoke else SETTLE_SECONDS  # a smoke run checks the harness, not memory
    names = layout.model_names(ctx.models_dir)
    port = free_port()
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "serve.log"
        process = start(port, log, {"ZOOSERVE_MODELS_DIR": str(ctx.models_dir.resolve()), "ZOOSERVE_BATCHING": "on"},
                        core=None)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process, log)
            server = psutil.Process(process.pid)
            with httpx.Client(base_url=url, timeout=300) as client:
                for _ in range(3):  # the allocators' first growth is not a leak
                    _touch(client, names)
                before = _settled(server, client, names, settle)
                started = time.perf_counter()
                for _ in range(cycles):
                    for name in names:
                        client.post(f"/v2/repository/models/{name}/unload").raise_for_status()
                        client.post(f"/v2/repository/models/{name}/load").raise_for_status()
                    _touch(client, names)
                seconds = time.perf_counter() - started
                after = _settled(server, client, names, settle)
        finally:
            stop(process)
    growth = after["rss_mb"] / before["rss_mb"] - 1
    return {"models": names, "cycles": cycles, "seconds": seconds, "before": before, "after": after,
            "rss_growth": growth, "objective_growth": OBJECTIVE_GROWTH, "meets_objective": growth < OBJECTIVE_GROWTH}


def markdown(result: dict) -> str:
    before, after = result["before"], result["after"]
    rows = [[result["cycles"], len(result["models"]), result["seconds"], before["processes"], before["rss_mb"],
             after["rss_mb"], f"{result['rss_growth']:+.1%}", before["pss_mb"], after["pss_mb"],
             f"{'yes' if result['meets_objective'] else 'no'} (< {result['objective_growth']:.0%})"]]
    table = markdown_table(["cycles", "models", "seconds", "processes", "RSS before MB", "RSS after MB", "growth",
                            "PSS before MB", "PSS after MB", "meets objective"], rows)
    return (f"### Memory over load and unload\n\nEvery model of the models directory unloaded and loaded again "
            f"through `/v2/repository`, {result['cycles']} times, with one answer from each worker per cycle.\n\n"
            f"{table}")
