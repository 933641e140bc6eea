"""What the prediction log costs: ``/house-price/predict`` (one house) with the log off and on
(SQLite, as ``make serve`` keeps it), two servers over the same models pinned to core 0, the load
tool on core 1, closed loops at 8 and 32 connections in rounds of one run each, off then on, then
on then off (so neither side always runs second). Each figure is the median of the rounds;
``ratio`` is the median of each round's on / off (``ratios``, all of them, show the spread), which a neighbour's burst on a shared host
moves less than a ratio of medians. After the load, the log's rows are counted against the
requests the on-server answered (nothing may be lost while it keeps up).
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import httpx

from .common import Context, markdown_table
from .floor import cases, pinned_server, same_models
from .http_load import client_core
from .load_tools import closed_loop

CONNECTIONS = (8, 32)
# Many short rounds rather than a few long ones: a shared host's bursts last seconds, and a pair of
# rounds run back to back meets the same burst more often.
ROUNDS = 10
SECONDS = 3.0


def _written(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("zooserve_prediction_log_records_total{") and 'outcome="written"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _settled(read: Callable[[], float], every: float = 0.5, timeout: float = 30.0) -> float:
    """``read()`` once two readings ``every`` seconds apart agree."""
    last, deadline = read(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(every)
        current = read()
        if current == last:
            return current
        last = current
    return last


def run(ctx: Context) -> dict:
    seconds, rounds = (1.0, 1) if ctx.smoke else (SECONDS, ROUNDS)
    request = cases(ctx.models_dir)["/house-price/predict"][1]
    with tempfile.TemporaryDirectory() as work, client_core():
        models = same_models(ctx.models_dir, Path(work) / "models")
        database = Path(work) / "predictions.db"
        with pinned_server(Path(work) / "off.log", {"ZOOSERVE_MODELS_DIR": str(models)}, None) as off, \
                pinned_server(Path(work) / "on.log", {"ZOOSERVE_MODELS_DIR": str(models),
                                                      "ZOOSERVE_PREDICTION_LOG": f"sqlite:///{database}"}, None) as on:
            for url, _process in (off, on):
                closed_loop(url, request, 8, seconds / 2)  # warm-up; the on-server's schema is migrated here
            points = {count: {"off": [], "on": []} for count in CONNECTIONS}
            answered = 0
            for round_ in range(rounds):
                for count in CONNECTIONS:
                    for side, (url, _process) in (("off", off), ("on", on))[::1 if round_ % 2 == 0 else -1]:
                        figures = closed_loop(url, request, count, seconds)
                        points[count][side].append(figures)
                        answered += figures["requests"] - figures["failures"] if side == "on" else 0
            written = _settled(lambda: _written(on[0]))  # the writer's last batch lands within a second
            with sqlite3.connect(database) as connection:
                rows = connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    return {"seconds_per_point": seconds, "rounds": rounds, "rows_in_log": rows, "written_counter": written,
            "points": [_point(count, sides) for count, sides in points.items()], "answered_with_log": answered}


def _point(connections: int, sides: dict[str, list[dict]]) -> dict:
    """One connection count's figures: each side's medians, and each round's on / off."""
    ratios = [on["requests_per_s"] / off["requests_per_s"] for on, off in zip(sides["on"], sides["off"])]
    return {"connections": connections,
            **{side: {key: statistics.median(run[key] for run in runs) for key in ("requests_per_s", "p50_ms", "p99_ms")}
               for side, runs in sides.items()},
            "failures": sum(run["failures"] for runs in sides.values() for run in runs),
            "ratio": statistics.median(ratios), "ratios": ratios}


def markdown(result: dict) -> str:
    rows = [[point["connections"], point["off"]["requests_per_s"], point["on"]["requests_per_s"],
             f"{point['ratio']:.2f}x", f"{min(point['ratios']):.2f}-{max(point['ratios']):.2f}",
             point["off"]["p99_ms"], point["on"]["p99_ms"], point["failures"]]
            for point in result["points"]]
    return "\n".join([
        "### The prediction log's cost",
        f"`/house-price/predict`, one house, log off and on (SQLite), medians of {result['rounds']} interleaved "
        f"rounds of {result['seconds_per_point']:.0f} s (on / off: the median of the rounds' ratios). The log holds {result['rows_in_log']:,} rows for the "
        f"{result['answered_with_log']:,} answers of the measured rounds and the warm-up's.",
        "",
        markdown_table(["connections", "off req/s", "on req/s", "on / off", "rounds' range", "off p99 ms", "on p99 ms", "failures"],
                       rows),
    ])
