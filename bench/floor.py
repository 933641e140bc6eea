"""ZooServe's request path against the floor (``bench/floor_app.py``): the same graphs and bodies
on a bare Starlette + uvicorn + ONNX Runtime app, both servers pinned to core 0, the load tool on
core 1, measured interleaved in one run.

Closed loops at 1, 8 and 32 connections give throughput and p50/p99; open loops at 100, 200 and
400 requests/s give the latency a client sees at a steady rate. Each figure is also a ratio to
the floor's. The server's CPU per request (every process of it) and ZooServe's memory (all its
processes, idle and after the load) say where the difference comes from.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import psutil

from loadtests.payloads import digit_pngs, houses, photos
from loadtests.server import free_port, start, stop, wait_ready
from serving.inference.images import to_mnist, decode
from serving.repository import layout

from .common import Context, markdown_table
from .http_load import client_core
from .floor_app import MODELS
from .load_tools import Request, closed_loop, open_loop, wrk_available

CONNECTIONS = (1, 8, 32)
RATES = (100, 200, 400)
# A photo takes about 7 ms of a core (decode, resize, the CNN) on either server: 200 and 400 a
# second would only measure a queue growing for 10 s.
PHOTO_RATES = (25, 50, 100)
BOUNDARY = "zooservebench"


def v2_json_body(name: str, values: np.ndarray) -> bytes:
    """An inference-protocol request of one FP32 input, its data as JSON."""
    return json.dumps({"inputs": [{"name": name, "shape": list(values.shape), "datatype": "FP32",
                                   "data": values.ravel().tolist()}]}).encode()


def _multipart(field: str, upload: bytes, filename: str, media_type: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {media_type}\r\n\r\n").encode() + upload + f"\r\n--{BOUNDARY}--\r\n".encode()


def cases(models_dir: Path) -> dict[str, tuple[Request, Request]]:
    """Each compared request: (what the floor receives, what ZooServe receives)."""
    house = houses()[0]
    order = json.loads(layout.card_file(models_dir, "house-price-gbm").read_text())["preprocessing"]["feature_order"]
    house_predict = Request("/house-price/predict", json.dumps({"houses": [house]}).encode())
    house_v2 = Request("/v2/models/house-price-gbm/infer",
                       v2_json_body("features", np.array([[house[name] for name in order]], np.float32)))
    png = digit_pngs()[0]
    digit_v2 = Request("/v2/models/mnist-cnn/infer", v2_json_body("image", to_mnist(decode(png))[None]))
    form = f"multipart/form-data; boundary={BOUNDARY}"
    digit_png = Request("/digits/classify", _multipart("image", png, "digit.png", "image/png"), form)
    photo = Request("/images/classify", _multipart("image", photos()[0], "photo.jpg", "image/jpeg"), form)
    return {"/house-price/predict": (house_predict, house_predict),
            "/v2/models/house-price-gbm/infer": (house_v2, house_v2),
            "/v2/models/mnist-cnn/infer": (digit_v2, digit_v2),
            "/digits/classify (PNG)": (digit_png, digit_png),
            "/images/classify (JPEG)": (photo, photo)}


@contextlib.contextmanager
def pinned_server(log: Path, env: dict[str, str], command: list[str] | None) -> Iterator["Server"]:
    """ZooServe (``command`` None) or another server on core 0 at a free port; yields its URL and process."""
    port = free_port()
    process = start(port, log, env, core=0, command=command and [*command, "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield url, psutil.Process(process.pid)
    finally:
        stop(process)


def _tree(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def memory_mb(process: psutil.Process) -> dict[str, float]:
    """Resident memory of the server and all its workers: RSS counts shared library pages once per
    process (the conservative sum), PSS shares them out."""
    infos = [p.memory_full_info() for p in _tree(process)]
    return {"processes": len(infos), "rss_mb": sum(i.rss for i in infos) / 2**20,
            "pss_mb": sum(i.pss for i in infos) / 2**20}


def _server_cpu(process: psutil.Process) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in _tree(process))


def _closed(url: str, process: psutil.Process, request: Request, connections: int, seconds: float) -> dict:
    cpu = _server_cpu(process)
    figures = closed_loop(url, request, connections, seconds)
    figures["server_cpu_ms"] = (_server_cpu(process) - cpu) * 1000 / max(1, figures["requests"])
    return figures


def run(ctx: Context) -> dict:
    seconds = 0.5 if ctx.smoke else 10.0
    connections, rates = ((8,), (50,)) if ctx.smoke else (CONNECTIONS, RATES)
    floor_command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--host", "127.0.0.1",
                     "--no-access-log", "--log-level", "warning"]
    with tempfile.TemporaryDirectory() as logs, client_core():
        env = {"ZOOSERVE_MODELS_DIR": str(same_models(ctx.models_dir, Path(logs) / "models"))}
        with pinned_server(Path(logs) / "floor.log", env, floor_command) as floor, \
                pinned_server(Path(logs) / "zooserve.log", env, None) as zoo:
            memory = {"idle": memory_mb(zoo[1]), "floor_idle": memory_mb(floor[1])}
            results = {label: _compare(floor, zoo, requests, connections,
                                       PHOTO_RATES if requests[1].path == "/images/classify" and not ctx.smoke else rates,
                                       seconds)
                       for label, requests in cases(ctx.models_dir).items()}
            memory["after_load"] = memory_mb(zoo[1])
    return {"seconds_per_point": seconds, "load_tool": "wrk" if wrk_available() else "asyncio (wrk not installed)",
            "memory": memory, "cases": results}


def same_models(models_dir: Path, into: Path) -> Path:
    """A models directory holding only the floor's models (links), so both servers load the same
    graphs and their memory compares like for like."""
    into.mkdir()
    for name in MODELS:
        (into / name).symlink_to((models_dir / name).resolve(), target_is_directory=True)
    return into


Server = tuple[str, psutil.Process]  # URL, server process


def _compare(floor: Server, zoo: Server, requests: tuple[Request, Request], connections: tuple[int, ...],
             rates: tuple[int, ...], seconds: float) -> dict[str, list]:
    """One request's closed and open loops on both servers, interleaved point by point."""
    sides = (("floor", floor, requests[0]), ("zooserve", zoo, requests[1]))
    for _, (url, _process), request in sides:
        closed_loop(url, request, 8, seconds / 2)  # warm-up: first-call costs, connection set-up
    return {"closed": [{side: _closed(url, process, request, count, seconds) for side, (url, process), request in sides}
                       for count in connections],
            "open": [{side: open_loop(url, request, rate, seconds) for side, (url, _process), request in sides}
                     for rate in rates]}


def _ratio(row: dict, key: str) -> str:
    floor, zoo = row["floor"][key], row["zooserve"][key]
    return f"{zoo / floor:.2f}x" if floor else "-"


def markdown(result: dict) -> str:
    closed, opened = [], []
    for label, rows in result["cases"].items():
        for row in rows["closed"]:
            zoo, floor = row["zooserve"], row["floor"]
            closed.append([label, zoo["connections"], floor["requests_per_s"], zoo["requests_per_s"],
                           _ratio(row, "requests_per_s"), floor["p50_ms"], zoo["p50_ms"], floor["p99_ms"],
                           zoo["p99_ms"], floor["server_cpu_ms"], zoo["server_cpu_ms"],
                           f"{max(floor['client_cpu'], zoo['client_cpu']):.0%}", floor["failures"] + zoo["failures"]])
        for row in rows["open"]:
            zoo, floor = row["zooserve"], row["floor"]
            opened.append([label, zoo["offered_per_s"], floor["p50_ms"], zoo["p50_ms"], floor["p99_ms"], zoo["p99_ms"],
                           _ratio(row, "p99_ms"), f"{max(floor['client_cpu'], zoo['client_cpu']):.0%}",
                           floor["failures"] + zoo["failures"]])
    memory = result["memory"]
    return "\n".join([
        "### Serving overhead against the floor",
        f"Both servers pinned to core 0, the load tool on core 1 ({result['load_tool']}), "
        f"{result['seconds_per_point']:.0f} s per point, interleaved. Floor: `bench/floor_app.py`.",
        "",
        markdown_table(["request", "connections", "floor req/s", "ZooServe req/s", "ratio", "floor p50 ms",
                        "ZooServe p50 ms", "floor p99 ms", "ZooServe p99 ms", "floor CPU ms/req",
                        "ZooServe CPU ms/req", "load tool CPU", "failures"], closed),
        "",
        "Fixed offered rates (open loop, latency from each request's scheduled start):",
        "",
        markdown_table(["request", "offered req/s", "floor p50 ms", "ZooServe p50 ms", "floor p99 ms",
                        "ZooServe p99 ms", "p99 ratio", "load tool CPU", "failures"], opened),
        "",
        f"ZooServe's memory, all {memory['idle']['processes']} processes: {memory['idle']['rss_mb']:.0f} MB RSS "
        f"({memory['idle']['pss_mb']:.0f} MB PSS) idle, {memory['after_load']['rss_mb']:.0f} MB RSS after the load; "
        f"the floor: {memory['floor_idle']['rss_mb']:.0f} MB.",
    ])
