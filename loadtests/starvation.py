"""``make starvation``: do the fast endpoints keep answering while one client abuses the service?

Three phases against one server, each ``--seconds`` long: nothing else (the baseline), 64
connections that each send two bytes of a declared body and stall, and 64 clients each asking for
a long diffusion grid in a loop. Meanwhile a probe sends ``/house-price/predict`` and
``/digits/classify`` (a PNG upload) at ``--rate`` requests/s each and records status and latency.
Written to ``reports/starvation/``: ``starvation.json`` and ``starvation.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import httpx
import numpy as np

from loadtests import payloads, report
from loadtests.run import REPO
from loadtests.server import served

ABUSERS = 64
LONG_GENERATION = {"n": 64, "steps": 200}


@contextlib.contextmanager
def stalled_bodies(port: int, stop: threading.Event) -> Iterator[None]:
    """``ABUSERS`` connections, each with two bytes of a 1,000-byte body; re-opened when answered."""
    def stall() -> None:
        while not stop.is_set():
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"POST /house-price/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"")
                sock.settimeout(1.0)
                while not stop.is_set():
                    try:
                        if not sock.recv(4096):
                            break
                    except socket.timeout:
                        continue
                    except OSError:
                        break

    yield from _running([stall] * ABUSERS, stop)


@contextlib.contextmanager
def long_generations(url: str, stop: threading.Event) -> Iterator[None]:
    def generate() -> None:
        with httpx.Client(timeout=600) as client:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    if client.post(f"{url}/generate/diffusion", json=LONG_GENERATION).status_code == 429:
                        stop.wait(0.5)

    yield from _running([generate] * ABUSERS, stop)


def _running(targets: list[Callable[[], None]], stop: threading.Event) -> Iterator[None]:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # let the abuse take hold before probing
    try:
        yield
    finally:
        stop.set()


def probe(url: str, seconds: float, rate: float) -> list[dict]:
    """Both endpoints at ``rate`` requests/s each for ``seconds``: status and latency of each call."""
    house = {"houses": [payloads.houses()[0]]}
    digit = payloads.digit_pngs()[0]
    calls = {"/house-price/predict": lambda client: client.post(f"{url}/house-price/predict", json=house),
             "/digits/classify": lambda client: client.post(f"{url}/digits/classify",
                                                             files={"image": ("digit.png", digit, "image/png")})}
    results: list[dict] = []

    def loop(name: str, call: Callable[[httpx.Client], httpx.Response]) -> None:
        with httpx.Client(timeout=60) as client:
            start = time.monotonic()
            for index in range(int(seconds * rate)):
                time.sleep(max(0.0, start + index / rate - time.monotonic()))
                began = time.perf_counter()
                try:
                    status: int | str = call(client).status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                results.append({"endpoint": name, "status": status, "ms": 1000 * (time.perf_counter() - began)})

    threads = [threading.Thread(target=loop, args=item) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def summarize(phase: str, results: list[dict]) -> list[dict]:
    rows = []
    for endpoint in dict.fromkeys(row["endpoint"] for row in results):
        mine = [row for row in results if row["endpoint"] == endpoint]
        ms = np.array([row["ms"] for row in mine])
        statuses = Counter(str(row["status"]) for row in mine)
        rows.append({"phase": phase, "endpoint": endpoint, "requests": len(mine),
                     "statuses": ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items())),
                     "p50 ms": float(np.percentile(ms, 50)), "p99 ms": float(np.percentile(ms, 99)),
                     "max ms": float(ms.max())})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=10.0, help="probe requests/s per endpoint")
    parser.add_argument("--port", type=int, default=3300)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "starvation")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with served(args.port, args.out / "server.log") as url:
        rows += summarize("baseline", probe(url, args.seconds, args.rate))
        for phase, abuse in ((f"{ABUSERS} stalled bodies", lambda stop: stalled_bodies(args.port, stop)),
                             (f"{ABUSERS} long generations", lambda stop: long_generations(url, stop))):
            stop = threading.Event()
            with abuse(stop):
                rows += summarize(phase, probe(url, args.seconds, args.rate))
            time.sleep(2.0)
    (args.out / "starvation.json").write_text(json.dumps(rows, indent=2))
    table = report.markdown(rows, ["phase", "endpoint", "requests", "statuses", "p50 ms", "p99 ms", "max ms"])
    (args.out / "starvation.md").write_text(table + "\n")
    print(table)
    return 0 if all(row["statuses"] == f"200: {row['requests']}" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
