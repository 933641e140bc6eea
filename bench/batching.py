"""Adaptive batching on vs off for ``/digits/classify``, at 1, 8, 32 and 64 concurrent clients.

"On" is the default service: each upload is preprocessed in the API worker and sent to the
``Classifiers`` service, which joins concurrent requests into one ONNX Runtime call. "Off"
(``ZOOSERVE_BATCHING=off``) runs the model in the API worker itself, one picture per call, with
no hop between services. The same PNG digits go to both servers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from loadtests.payloads import digit_pngs

from .common import Context, markdown_table, ratio
from .http_load import client_core, closed_loop, serve_models

LEVELS = (1, 8, 32, 64)
COMPARED_AT = 32


def _send_digit(client, number: int):
    pngs = digit_pngs()
    return client.post("/digits/classify", files={"image": ("digit.png", pngs[number % len(pngs)], "image/png")})


def run(ctx: Context) -> dict:
    levels = (1, 8) if ctx.smoke else LEVELS
    seconds = 0.3 if ctx.smoke else 10.0
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as logs, client_core():
        for mode in ("on", "off"):
            with serve_models(ctx, Path(logs) / f"batching-{mode}.log", ZOOSERVE_BATCHING=mode) as url:
                closed_loop(url, _send_digit, clients=8, seconds=seconds / 3)  # warm-up: connections, batcher
                results[mode] = [closed_loop(url, _send_digit, clients, seconds) for clients in levels]
    at = levels.index(COMPARED_AT) if COMPARED_AT in levels else -1
    on, off = results["on"][at], results["off"][at]
    return {"endpoint": "/digits/classify (PNG upload)", "seconds_per_level": seconds, "levels": results,
            "compared_at_clients": on["clients"],
            "throughput_ratio_on_over_off": ratio(on["requests_per_s"], off["requests_per_s"]),
            "p99_ratio_on_over_off": ratio(on["p99_ms"], off["p99_ms"]),
            "keep_batching": on["requests_per_s"] >= off["requests_per_s"] and on["p99_ms"] <= off["p99_ms"]}


def markdown(result: dict) -> str:
    rows = [[mode, level["clients"], level["requests"], level["failures"], level["requests_per_s"], level["p50_ms"],
             level["p99_ms"]] for mode, levels in result["levels"].items() for level in levels]
    verdict = "keep it on" if result["keep_batching"] else "it lowers throughput or raises p99 here"
    return "\n".join([
        "### Adaptive batching on vs off",
        f"Closed-loop clients on {result['endpoint']} for {result['seconds_per_level']:g} s per level; "
        "server on core 0, clients on core 1.",
        "",
        markdown_table(["batching", "clients", "requests", "failures", "req/s", "p50 ms", "p99 ms"], rows),
        "",
        f"At {result['compared_at_clients']} clients, on/off throughput ratio "
        f"{result['throughput_ratio_on_over_off']:.2f}, p99 ratio {result['p99_ratio_on_over_off']:.2f}: {verdict}.",
    ])
