"""Load generators for the serving-overhead comparison: wrk for closed loops, an open-loop client
for fixed offered rates.

A closed loop (each connection sends its next request when the last one answers) measures how
many requests a server can answer; it cannot measure latency at a given rate, because a slow
answer delays the requests behind it and they are never counted as late (coordinated omission).
The open loop sends on a fixed schedule and times a request that had to wait for a connection
from when it *should* have left, as wrk2 does. Both report the CPU share of the core the load tool ran on: a figure
measured with a saturated client describes the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
local body = assert(io.open("{body}", "rb"))
wrk.body = body:read("*a")
body:close()
done = function(summary, latency, requests)
  local out = assert(io.open("{result}", "w"))
  local e = summary.errors
  out:write(string.format('{{"requests": %d, "seconds": %f, "failures": %d, "p50_ms": %f, "p99_ms": %f}}',
    summary.requests, summary.duration / 1e6, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  out:close()
end
"""


@dataclass(frozen=True)
class Request:
    """One POST as both servers receive it."""

    path: str
    body: bytes
    content_type: str = "application/json"

    def raw(self, host: str) -> bytes:
        return (f"POST {self.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(self.body)}\r\n\r\n").encode() + self.body


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def closed_loop(url: str, request: Request, connections: int, seconds: float) -> dict[str, float]:
    """``connections`` closed-loop connections for ``seconds``: wrk (one thread) where installed,
    else the asyncio client below (enough to check the harness, not to saturate a server)."""
    if not wrk_available():
        return asyncio.run(_closed_loop(url, request, connections, seconds))
    with tempfile.TemporaryDirectory() as work:
        body, result, script = Path(work, "body"), Path(work, "result.json"), Path(work, "script.lua")
        body.write_bytes(request.body)
        script.write_text(WRK_SCRIPT.format(content_type=request.content_type, body=body, result=result))
        cpu = _children_cpu()
        subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                        "-s", str(script), url + request.path], check=True, capture_output=True)
        figures = json.loads(result.read_text())
    return {"connections": connections, "requests": figures["requests"], "failures": figures["failures"],
            "requests_per_s": figures["requests"] / figures["seconds"], "p50_ms": figures["p50_ms"],
            "p99_ms": figures["p99_ms"], "client_cpu": (_children_cpu() - cpu) / figures["seconds"],
            "tool": "wrk"}


async def _exchange(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes) -> int:
    """Send one request on a kept-alive connection and read its whole answer; its status code."""
    reader, writer = stream
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return int(head[9:12])


class _Connections:
    """Kept-alive connections to one server, reopened when the server closes one."""

    def __init__(self, url: str, request: Request) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.raw = request.raw(parts.netloc)

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    async def send(self, stream: list) -> bool:
        """One request on ``stream`` (a one-item list, so a reopened connection replaces it)."""
        for _ in range(2):
            try:
                return await _exchange(stream[0], self.raw) == 200
            except (ConnectionError, asyncio.IncompleteReadError):
                stream[0][1].close()
                stream[0] = await self.open()
        return False


def _summary(latencies: list[float], failures: int, elapsed: float, cpu: float) -> dict[str, float]:
    values = np.asarray(latencies) * 1000.0
    return {"requests": int(values.size), "failures": failures, "requests_per_s": values.size / elapsed,
            "p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
            "client_cpu": cpu / elapsed}


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _closed_loop(url: str, request: Request, connections: int, seconds: float) -> dict[str, float]:
    pool = _Connections(url, request)
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal failures
        stream = [await pool.open()]
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            failures += not await pool.send(stream)
            latencies.append(time.perf_counter() - start)
        stream[0][1].close()

    cpu, started = _cpu(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {"connections": connections, **_summary(latencies, failures, elapsed, _cpu() - cpu), "tool": "asyncio"}


def open_loop(url: str, request: Request, rate: float, seconds: float, connections: int = 32) -> dict[str, float]:
    """Requests sent at ``rate`` per second for ``seconds`` over up to ``connections`` connections;
    one waiting for a free connection (the server is behind) is timed from its scheduled start."""
    return asyncio.run(_open_loop(url, request, rate, seconds, connections))


async def _open_loop(url: str, request: Request, rate: float, seconds: float, connections: int) -> dict[str, float]:
    pool = _Connections(url, request)
    idle: asyncio.LifoQueue = asyncio.LifoQueue()  # the most recently used first: fewer idle timeouts
    for _ in range(connections):
        idle.put_nowait([await pool.open()])
    latencies: list[float] = []
    failures = 0

    async def one(scheduled: float) -> None:
        nonlocal failures
        # A request that waits for a free connection waits on the server: timed from its schedule.
        # One that finds a connection is timed from now, leaving out the client's own timer lateness
        # (the event loop's timers have millisecond resolution).
        busy = idle.empty()
        stream = await idle.get()
        start = scheduled if busy else time.perf_counter()
        failures += not await pool.send(stream)
        latencies.append(time.perf_counter() - start)
        idle.put_nowait(stream)

    cpu, started = _cpu(), time.perf_counter()
    tasks = []
    for index in range(int(rate * seconds)):
        scheduled = started + index / rate
        if (wait := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.ensure_future(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not idle.empty():
        (await idle.get())[0][1].close()
    return {"offered_per_s": rate, **_summary(latencies, failures, elapsed, _cpu() - cpu), "tool": "asyncio"}
