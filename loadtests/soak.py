"""``make soak``: hours of mixed traffic in minutes, with the server's memory sampled throughout.

Locust runs every user class of ``locustfile.py`` (house prices, uploads of digits and photos,
forecasts, ``/v2``, and the three generators) at a total offered rate, against a server started
here (or ``--url``). Every ``--sample`` seconds the RSS of each server process (supervisor, API,
Classifiers, Generators) is recorded. Written to ``reports/soak/``: ``rss.csv``, ``soak.json`` and
``soak.md`` with the failures by endpoint and status and each process's RSS growth after the
warm-up. The exit code is 1 when any request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from loadtests import report, server
from loadtests.run import RATE, REPO, locust_command

GENERATOR_RATE = 3 * RATE / 5  # the three generator users run one each at a fifth of the rate


def process_name(process: psutil.Process) -> str:
    command = process.cmdline()
    if "--service-name" in command:
        return command[command.index("--service-name") + 1]
    return "supervisor"


def sample_rss(root_pid: int, every: float, stop: threading.Event, rows: list[dict]) -> None:
    """One row per process every ``every`` seconds until ``stop``: seconds since start, name, MB."""
    start = time.monotonic()
    while True:
        root = psutil.Process(root_pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                rows.append({"seconds": round(time.monotonic() - start), "process": process_name(process),
                             "rss_mb": round(process.memory_info().rss / 2**20, 1)})
        if stop.wait(every):
            return


def growth(rows: list[dict], warm_up: float) -> list[dict]:
    """Per process: RSS at the first sample after the warm-up, at the end, and the growth between."""
    table = []
    for name in dict.fromkeys(row["process"] for row in rows):
        series = [row for row in rows if row["process"] == name]
        after = [row for row in series if row["seconds"] >= warm_up] or series[-1:]
        first, last = after[0]["rss_mb"], series[-1]["rss_mb"]
        table.append({"process": name, "start MB": series[0]["rss_mb"], "after warm-up MB": first,
                      "end MB": last, "peak MB": max(row["rss_mb"] for row in series),
                      "growth %": round(100 * (last - first) / first, 1)})
    return table


def failures(prefix: Path) -> list[dict]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open() as handle:
        return [{"endpoint": row["Name"], "error": row["Error"], "count": int(row["Occurrences"])}
                for row in csv.DictReader(handle)]


def seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]] if duration[-1] in units else float(duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--duration", default="10m", help="Locust run time: 60s, 10m, 1h")
    parser.add_argument("--rate", type=float, default=50.0, help="total requests/s offered")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--warm-up", type=float, default=None,
                        help="seconds before RSS growth is measured (default: 5 minutes, or a third of a shorter run)")
    parser.add_argument("--url", help="a running server: Locust only, no RSS (its processes are not ours)")
    parser.add_argument("--port", type=int, default=3200)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "soak")
    args = parser.parse_args(argv)

    length = seconds(args.duration)
    warm_up = args.warm_up if args.warm_up is not None else min(300.0, length / 3)
    users = max(1, math.ceil((args.rate - GENERATOR_RATE) / RATE)) + 3  # at least the rate asked for
    offered = (users - 3) * RATE + GENERATOR_RATE
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = args.out / "soak"
    for stale in args.out.glob("soak_*.csv"):
        stale.unlink()
    rows: list[dict] = []
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        if args.url:
            url, sampler = args.url, None
        else:
            url, log = f"http://127.0.0.1:{args.port}", args.out / "server.log"
            process = server.start(args.port, log, core=0)
            stack.callback(server.stop, process)
            server.wait_ready(url, process, log)
            sampler = threading.Thread(target=sample_rss, args=(process.pid, args.sample, stop, rows))
            sampler.start()
        print(f"soak: {users} users ({offered:g} req/s offered) for {args.duration} against {url}", flush=True)
        subprocess.run(locust_command(url, users, users, args.duration, prefix, []), cwd=REPO, check=False)
        stop.set()
        if sampler:
            sampler.join()
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.exists():
        print("error: Locust wrote no statistics; its messages are above", file=sys.stderr)
        return 2
    stats = report.read_stats(stats_path)
    failed = failures(prefix)
    memory = growth(rows, warm_up) if rows else []
    with (args.out / "rss.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["seconds", "process", "rss_mb"])
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "soak.json").write_text(json.dumps({"duration": args.duration, "rate": offered, "users": users,
                                                    "warm_up_s": warm_up, "stats": stats, "failures": failed,
                                                    "rss": memory}, indent=2))
    total = next((row for row in stats if row["name"] == "Aggregated"), None)
    summary = [f"# Soak: {args.duration} at {offered:g} req/s offered ({users} Locust users)", "",
               f"{int(total['requests']) if total else 0} requests, {sum(f['count'] for f in failed)} failed.", "",
               report.table(stats), "", "## Failures by endpoint and error", "",
               report.markdown(failed, ["endpoint", "error", "count"]) if failed else "none", "",
               f"## RSS per process (growth measured after the first {warm_up:.0f} s)", "",
               report.markdown(memory, list(memory[0])) if memory else "not sampled (--url)"]
    (args.out / "soak.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
