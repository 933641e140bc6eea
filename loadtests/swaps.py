"""``make swaps``: model versions swapped under load lose nothing.

Locust offers every endpoint family (``locustfile.py``: house prices, digit and photo uploads,
forecasts, ``/v2``, the three generators) at a total rate, twice for the same time against a server
started here: first steady, then while ``--swaps`` swaps run through the management API, evenly
spread. A swap publishes a version prepared beforehand (a copy of the model's newest graphs: no
training during the measurement) and loads it, so that it replaces the one serving; every fourth
swap rolls back instead, loading the previous version alone. They alternate between
``house-price-gbm`` and ``mnist-cnn``, the model behind the batched classifiers.

A witness client beside Locust sends house prices and digits in a loop and records the version
each answer names; each must be one loaded at the time (the versions before and after a swap
while its call runs, and for the few seconds the other workers take to follow). Written to
``reports/swaps/``: ``swaps.json`` and ``swaps.md`` (failures, p99 of each phase and their ratio,
the swaps and the witness's answers). Exit code 1 when a request failed, an answer named a version
not loaded, or p99 during the swaps is over twice the steady one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from loadtests import report, server
from loadtests.payloads import digit_pngs, houses
from loadtests.run import RATE, REPO, locust_command
from loadtests.soak import GENERATOR_RATE, failures, seconds
from serving.repository import layout
from serving.repository.registry import WATCH_SECONDS

MODELS = ("house-price-gbm", "mnist-cnn")
ROLLBACK_EVERY = 4
P99_LIMIT = 2.0  # p99 with swaps over p99 without


@dataclass
class Swap:
    model: str
    kind: str  # "new version" or "rollback"
    started: float
    ended: float = 0.0
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    status: int = 0


def _loaded(client: httpx.Client, model: str) -> list[str]:
    return [entry["version"] for entry in client.post("/v2/repository/index").json()
            if entry["name"] == model and entry["state"] == "READY"]


def prepare(models_dir: Path, model: str, count: int) -> list[Path]:
    """``count`` complete copies of the model's newest version, staged beside the models directory's
    folders (``.``-named: never read as models) and published one per swap."""
    source = layout.newest(models_dir / model)
    staged = []
    for index in range(count):
        folder = models_dir / f".{model}-prepared-{index}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(source, folder)
        staged.append(folder)
    return staged


def swapper(url: str, models_dir: Path, prepared: dict[str, list[Path]], count: int, length: float,
            swaps: list[Swap], stop: threading.Event) -> None:
    """``count`` swaps spread evenly over ``length`` seconds, alternating the models."""
    with httpx.Client(base_url=url, timeout=300) as client:
        for index in range(count):
            if stop.wait(length / (count + 1)):
                return
            model = MODELS[index % len(MODELS)]
            rollback = (index + 1) % ROLLBACK_EVERY == 0
            swap = Swap(model, "rollback" if rollback else "new version", time.monotonic(),
                        before=_loaded(client, model))
            if rollback:  # the version before the one serving, alone
                published = list(layout.by_version(models_dir / model))
                previous = published[published.index(swap.before[-1]) - 1]
                policy = {"version_policy": {"specific": {"versions": [previous]}}}
                response = client.post(f"/v2/repository/models/{model}/load",
                                       json={"parameters": {"config": json.dumps(policy)}})
            else:
                folder = prepared[model].pop()
                layout.publish(folder, models_dir / model, json.loads((folder / layout.CARD).read_text()))
                response = client.post(f"/v2/repository/models/{model}/load",
                                       json={"parameters": {"config": json.dumps({"version_policy": {"latest": {}}})}})
            swap.status, swap.ended, swap.after = response.status_code, time.monotonic(), _loaded(client, model)
            swaps.append(swap)


@dataclass
class Answer:
    model: str
    sent: float
    received: float
    status: int
    version: str | None


def witness(url: str, stop: threading.Event, answers: list[Answer]) -> None:
    """House prices and digits, one after another, each answer's version recorded."""
    house, digit = houses()[0], digit_pngs()[0]
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            for model, send in (("house-price-gbm", lambda: client.post("/house-price/predict",
                                                                        json={"houses": [house]})),
                                ("mnist-cnn", lambda: client.post("/digits/classify",
                                                                  files={"image": ("d.png", digit, "image/png")}))):
                sent = time.monotonic()
                response = send()
                version = response.json()["model"]["version"] if response.status_code == 200 else None
                answers.append(Answer(model, sent, time.monotonic(), response.status_code, version))
            time.sleep(0.05)


def misnamed(answers: list[Answer], swaps: list[Swap], initial: dict[str, list[str]]) -> list[Answer]:
    """The answers naming a version not loaded at the time: outside the versions loaded before the
    first swap of their model, after each swap, and, while a swap's call runs and for the time the
    other workers take to follow (``WATCH_SECONDS`` and one more), before it."""
    wrong = []
    for answer in answers:
        allowed = set(initial[answer.model])
        for swap in (swap for swap in swaps if swap.model == answer.model):
            if swap.started <= answer.received:
                allowed = set(swap.before) | set(swap.after) if answer.sent <= swap.ended + WATCH_SECONDS + 1 \
                    else set(swap.after)
        if answer.status != 200 or answer.version not in allowed:
            wrong.append(answer)
    return wrong


def _phase(url: str, users: int, duration: str, prefix: Path) -> dict:
    for stale in prefix.parent.glob(f"{prefix.name}_*.csv"):
        stale.unlink()
    subprocess.run(locust_command(url, users, users, duration, prefix, []), cwd=REPO, check=False)
    stats = report.read_stats(Path(f"{prefix}_stats.csv"))
    total = next(row for row in stats if row["name"] == "Aggregated")
    return {"stats": stats, "failures": failures(prefix), "requests": int(total["requests"]), "p99_ms": total["p99 ms"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("models"),
                        help="a copy is served: swaps publish into it")
    parser.add_argument("--duration", default="120s", help="each phase's Locust run time")
    parser.add_argument("--rate", type=float, default=100.0, help="total requests/s offered")
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--port", type=int, default=3300)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "swaps")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    models_dir = args.out / "models"
    shutil.rmtree(models_dir, ignore_errors=True)
    shutil.copytree(args.models_dir, models_dir, symlinks=True)
    prepared = {model: prepare(models_dir, model, args.swaps) for model in MODELS}
    users = max(1, round((args.rate - GENERATOR_RATE) / RATE)) + 3
    length = seconds(args.duration)
    swaps: list[Swap] = []
    answers: list[Answer] = []
    url, log = f"http://127.0.0.1:{args.port}", args.out / "server.log"
    # Batching on: the digits go through the Classifiers worker, which must follow each swap too.
    process = server.start(args.port, log, {"ZOOSERVE_MODELS_DIR": str(models_dir), "ZOOSERVE_BATCHING": "on"},
                           core=0)
    try:
        server.wait_ready(url, process, log)
        with httpx.Client(base_url=url) as client:
            initial = {model: _loaded(client, model) for model in MODELS}
        steady = _phase(url, users, args.duration, args.out / "steady")
        stop = threading.Event()
        threads = [threading.Thread(target=swapper, args=(url, models_dir, prepared, args.swaps, length, swaps, stop)),
                   threading.Thread(target=witness, args=(url, stop, answers))]
        for thread in threads:
            thread.start()
        swapping = _phase(url, users, args.duration, args.out / "swapping")
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        server.stop(process)
        for folder in models_dir.glob(".*-prepared-*"):
            shutil.rmtree(folder, ignore_errors=True)
    wrong = misnamed(answers, swaps, initial)
    ratio = swapping["p99_ms"] / steady["p99_ms"] if steady["p99_ms"] else float("inf")
    failed = sum(row["count"] for phase in (steady, swapping) for row in phase["failures"])
    refused_swaps = [swap for swap in swaps if swap.status != 200]
    result = {"rate": args.rate, "users": users, "duration": args.duration, "steady": steady, "swapping": swapping,
              "p99_ratio": ratio, "swaps": [asdict(swap) for swap in swaps],
              "witness": {"answers": len(answers), "misnamed": [asdict(answer) for answer in wrong],
                          "versions_named": sorted({f"{a.model} {a.version}" for a in answers})}}
    (args.out / "swaps.json").write_text(json.dumps(result, indent=2))
    rows = [{"phase": name, "requests": phase["requests"], "failed": sum(row["count"] for row in phase["failures"]),
             "p99 ms": phase["p99_ms"]} for name, phase in (("steady", steady), (f"{len(swaps)} swaps", swapping))]
    summary = [f"# Swaps under load: {args.rate:g} req/s offered ({users} Locust users), {args.duration} a phase", "",
               report.markdown(rows, list(rows[0])), "",
               f"p99 with swaps / without: {ratio:.2f} (objective <= {P99_LIMIT:g}); swaps: {len(swaps)} "
               f"({sum(swap.kind == 'rollback' for swap in swaps)} rollbacks), {len(refused_swaps)} refused; "
               f"witness answers: {len(answers)}, naming a version not loaded or failed: {len(wrong)}", "",
               report.table(swapping["stats"])]
    (args.out / "swaps.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    return 1 if failed or wrong or refused_swaps or ratio > P99_LIMIT or len(swaps) < args.swaps else 0


if __name__ == "__main__":
    sys.exit(main())
