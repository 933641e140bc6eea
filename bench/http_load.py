"""Closed-loop HTTP clients for the sections that measure the service over loopback.

Each client sends its next request as soon as the last one answered, so ``clients`` is the
concurrency the server sees. The benchmark process runs on its own core (the server is pinned to
the other by ``loadtests.server.served``), as Locust does in ``make loadtest``.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import httpx
import numpy as np

from loadtests.server import free_port, served

from .common import Context

Send = Callable[[httpx.Client, int], httpx.Response]  # (client, request number) -> response
CLIENT_CORE = 1


@contextlib.contextmanager
def client_core() -> Iterator[None]:
    """Run the block on the core the server is not pinned to (where there are two or more)."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def serve_models(ctx: Context, log: Path, **env: str) -> ContextManager[str]:
    """The service on ``ctx.models_dir`` at a free loopback port (pinned to core 0), with extra
    ``ZOOSERVE_*`` settings in ``env``; yields its URL."""
    return served(free_port(), log, {"ZOOSERVE_MODELS_DIR": str(ctx.models_dir.resolve()), **env})


def closed_loop(url: str, send: Send, clients: int, seconds: float, min_requests: int = 1) -> dict[str, float]:
    """Throughput and latency percentiles of ``clients`` concurrent clients for ``seconds``."""
    deadline = time.perf_counter() + seconds

    def client(index: int) -> tuple[list[float], int]:
        latencies, failures, sent = [], 0, 0
        with httpx.Client(base_url=url, timeout=120) as session:
            while sent < min_requests or time.perf_counter() < deadline:
                start = time.perf_counter()
                response = send(session, index + sent * clients)
                latencies.append(time.perf_counter() - start)
                failures += response.status_code != 200
                sent += 1
        return latencies, failures

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - started
    latencies = np.concatenate([np.asarray(done) for done, _ in outcomes]) * 1000.0
    return {"clients": clients, "requests": int(latencies.size), "failures": sum(f for _, f in outcomes),
            "requests_per_s": latencies.size / elapsed, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99))}
