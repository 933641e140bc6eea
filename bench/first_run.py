"""A first run as a user meets it: ``make serve`` into an empty models directory, every endpoint
polled once a second from the moment the port opens, until every model answers.

    python -m bench.first_run                  # -> reports/first-run/{first-run.json,first-run.md,serve.log}
    python -m bench.first_run --timeout 2400

Reports the seconds from ``make serve`` to the port opening, to each endpoint's first 200 and to
``/readyz``, and every answer that was neither a 200 nor the documented 503 (JSON error with
``Retry-After``; ``/readyz`` answers a bare 503 until every model is loaded). The trainer's lines
(each model's time against its estimate) are in ``serve.log``. Run it on a quiet machine: it is
the figure the README's first-run table gives.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from loadtests import server
from loadtests.payloads import digit_pngs, houses, photos
from serving.schemas import EXAMPLE_PIXELS

from .common import markdown_table

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "reports" / "first-run"
# One request per endpoint (and per classifier behind /digits/classify), as a client would send it.
PROBES: dict[str, tuple[str, str, dict]] = {
    "house-price (gbm)": ("POST", "/house-price/predict", {"json": {"model": "gbm"}}),
    "house-price (mlp)": ("POST", "/house-price/predict", {"json": {"model": "mlp"}}),
    "passengers": ("POST", "/passengers/forecast", {"json": {"horizon": 3}}),
    **{f"digits ({name})": ("POST", "/digits/classify", {"json": {"pixels": EXAMPLE_PIXELS, "model": name}})
       for name in ("mnist-logreg", "mnist-knn", "mnist-tree", "mnist-forest")},
    "digits (mnist-cnn, upload)": ("POST", "/digits/classify", {"files": {"image": ("d.png", b"", "image/png")}}),
    "photos": ("POST", "/images/classify", {"files": {"image": ("p.jpg", b"", "image/jpeg")}}),
    "vae": ("POST", "/generate/vae", {"json": {"n": 1, "seed": 0}}),
    "gan": ("POST", "/generate/gan", {"json": {"n": 1, "seed": 0}}),
    "diffusion": ("POST", "/generate/diffusion", {"json": {"n": 1, "seed": 0, "steps": 5}}),
    "vae-conditional": ("POST", "/generate/vae", {"json": {"n": 1, "seed": 0, "digit": 3}}),
    "gan-conditional": ("POST", "/generate/gan", {"json": {"n": 1, "seed": 0, "digit": 3}}),
    "/models": ("GET", "/models", {}),
    "/livez": ("GET", "/livez", {}),
    "/readyz": ("GET", "/readyz", {}),
}


def _request(name: str) -> tuple[str, str, dict]:
    method, path, options = PROBES[name]
    if path == "/house-price/predict":  # the houses and pictures are made here, not at import
        return method, path, {"json": {**options["json"], "houses": houses()[:1]}}
    if "files" in options:
        picture = digit_pngs()[0] if name.startswith("digits") else photos()[0]
        field = options["files"]["image"]
        options = {"files": {"image": (field[0], picture, field[2])}}
    return method, path, options


def documented(name: str, response: httpx.Response) -> bool:
    """A 200, or the 503 a model still training is answered with."""
    if response.status_code == 200:
        return True
    if response.status_code != 503:
        return False
    if name == "/readyz":
        return True
    try:
        return "error" in response.json() and "retry-after" in response.headers
    except ValueError:
        return False


class Poller:
    """One thread per probe, each sending its request once a second until told to stop."""

    def __init__(self, url: str, started: float) -> None:
        self.url, self.started, self.stop = url, started, threading.Event()
        self.first_ok: dict[str, float] = {}
        self.statuses: dict[str, Counter] = {name: Counter() for name in PROBES}
        self.undocumented: list[dict] = []
        self.threads = [threading.Thread(target=self._poll, args=(name,), daemon=True) for name in PROBES]

    def _poll(self, name: str) -> None:
        method, path, options = _request(name)
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.stop.is_set():
                tick = time.monotonic()
                try:
                    response = client.request(method, path, **options)
                    status: int | str = response.status_code
                    ok = documented(name, response)
                    detail = response.text[:300]
                except httpx.HTTPError as error:
                    status, ok, detail = type(error).__name__, False, str(error)[:300]
                self.statuses[name][str(status)] += 1
                if status == 200 and name not in self.first_ok:
                    self.first_ok[name] = time.monotonic() - self.started
                if not ok:
                    self.undocumented.append({"probe": name, "at_s": round(time.monotonic() - self.started, 1),
                                              "status": status, "body": detail})
                self.stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))

    def done(self) -> bool:
        return len(self.first_ok) == len(PROBES)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def run(timeout: float, command: list[str] | None) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    port = server.free_port()
    log = OUT / "serve.log"
    with tempfile.TemporaryDirectory(prefix="zooserve-first-run-") as models:
        env = {"ZOOSERVE_MODELS_DIR": models, "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        process = server.start(port, log, env, command=command or ["make", "--no-print-directory", "serve",
                                                                     f"PORT={port}"])
        try:
            while not _port_open(port):
                if process.poll() is not None or time.monotonic() - started > timeout:
                    raise RuntimeError(f"make serve exited or never opened its port:\n{log.read_text()[-3000:]}")
                time.sleep(0.05)
            port_open = time.monotonic() - started
            poller = Poller(f"http://127.0.0.1:{port}", started)
            for thread in poller.threads:
                thread.start()
            while not poller.done() and time.monotonic() - started < timeout and process.poll() is None:
                time.sleep(1)
            poller.stop.set()
            for thread in poller.threads:
                thread.join(timeout=130)
        finally:
            server.stop(process)
    trainer = [line for line in log.read_text().splitlines() if re.search(r"x the estimate\)|about .* on this machine|"
                                                                          r"against the reference|autocast", line)]
    return {"port_open_s": round(port_open, 1), "first_200_s": {k: round(v, 1) for k, v in poller.first_ok.items()},
            "statuses": {name: dict(counts) for name, counts in poller.statuses.items()},
            "undocumented": poller.undocumented, "trainer": trainer, "timeout_s": timeout}


def markdown(result: dict) -> str:
    rows = [[name, f"{result['first_200_s'].get(name, 'never')}",
             ", ".join(f"{status}: {count}" for status, count in sorted(result["statuses"][name].items()))]
            for name in PROBES]
    return (f"port open after {result['port_open_s']} s; answers that were neither 200 nor the documented 503: "
            f"{len(result['undocumented'])}\n\n"
            + markdown_table(["probe", "first 200 (s after make serve)", "answers"], rows)
            + "\n\ntrainer:\n\n" + "\n".join(f"    {line}" for line in result["trainer"]) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=2400, help="seconds before giving up")
    args = parser.parse_args(argv)
    result = run(args.timeout, None)
    (OUT / "first-run.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "first-run.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if not result["undocumented"] and len(result["first_200_s"]) == len(PROBES) else 1


if __name__ == "__main__":
    raise SystemExit(main())
