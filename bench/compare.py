"""Two ``make bench`` runs side by side: ``python -m bench.compare old.json new.json``.

Prints every figure both reports hold, as old, new and new/old, and marks the changes beyond
``--tolerance`` whose direction the figure's name tells (times, latencies and memory: lower is
better; rates and speed-ups: higher). The machines are compared first: a ratio across different
CPUs (or CPU flags) measures the machines as much as the code.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

# Words of a figure's name (split at "_") that say which way is better; a name with neither gets no verdict.
LOWER_IS_BETTER = {"seconds", "s", "ms", "latency", "p50", "p90", "p95", "p99", "rss", "mb", "bytes"}
HIGHER_IS_BETTER = {"rps", "throughput", "speedup", "accuracy"}
SETTINGS = {"seconds_per_point", "rounds", "host_steal_share"}  # how a run was made, or its host's state: no verdict


def figures(report: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a report with its path (``sections.engines.models.mnist-cnn.ort_ms``)."""
    if isinstance(report, dict):
        for key, value in report.items():
            yield from figures(value, f"{path}.{key}" if path else str(key))
    elif isinstance(report, list):
        for index, value in enumerate(report):
            yield from figures(value, f"{path}[{index}]")
    elif isinstance(report, (int, float)) and not isinstance(report, bool):
        yield path, float(report)


def better(path: str) -> int:
    """+1 when a higher value is better, -1 when lower is, 0 when the name does not say."""
    leaf = path.rsplit(".", 1)[-1].lower()
    words = set(re.split(r"[_\W]+", leaf))
    if leaf in SETTINGS:
        return 0
    if re.search(r"per_(s|second)$", leaf) or HIGHER_IS_BETTER & words:  # requests_per_s: a rate
        return 1
    return -1 if LOWER_IS_BETTER & words else 0


def compare(old: dict[str, Any], new: dict[str, Any], tolerance: float = 0.1) -> list[dict[str, Any]]:
    """One row per figure both runs measured (the machine and settings left out)."""
    before = dict(figures(old.get("sections", {}), "sections"))
    rows = []
    for path, value in figures(new.get("sections", {}), "sections"):
        if path not in before:
            continue
        ratio = value / before[path] if before[path] else None
        direction = better(path)
        verdict = ""
        if ratio is not None and direction and abs(ratio - 1) > tolerance:
            verdict = "better" if (ratio > 1) == (direction > 0) else "WORSE"
        rows.append({"figure": path, "old": before[path], "new": value, "ratio": ratio, "verdict": verdict})
    return rows


def machines(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the two runs' machines and settings, in words."""
    notes = []
    for key in sorted(set(old.get("machine", {})) | set(new.get("machine", {}))):
        a, b = old.get("machine", {}).get(key), new.get("machine", {}).get(key)
        if a != b:
            if isinstance(a, list) and isinstance(b, list):
                notes.append(f"{key}: only old {sorted(set(a) - set(b))}, only new {sorted(set(b) - set(a))}")
            else:
                notes.append(f"{key}: {a} -> {b}")
    for key in ("threads", "smoke"):
        if old.get(key) != new.get(key):
            notes.append(f"{key}: {old.get(key)} -> {new.get(key)}")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.1, help="a change within this share is noise")
    parser.add_argument("--changed-only", action="store_true", help="only the figures marked better or WORSE")
    args = parser.parse_args(argv)
    old, new = (json.loads(path.read_text()) for path in (args.old, args.new))
    differences = machines(old, new)
    print("machines: the same" if not differences else
          "machines differ (the ratios measure them too):\n  " + "\n  ".join(differences))
    rows = compare(old, new, args.tolerance)
    shown = [row for row in rows if row["verdict"]] if args.changed_only else rows
    width = max((len(row["figure"]) for row in shown), default=10)
    print(f"{'figure':<{width}}  {'old':>12}  {'new':>12}  {'new/old':>8}")
    for row in shown:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.3f}"
        print(f"{row['figure']:<{width}}  {row['old']:>12.6g}  {row['new']:>12.6g}  {ratio:>8}  {row['verdict']}")
    worse = sum(row["verdict"] == "WORSE" for row in rows)
    print(f"{len(rows)} figures compared; {worse} worse by more than {args.tolerance:.0%}, "
          f"{sum(row['verdict'] == 'better' for row in rows)} better")
    return 0


if __name__ == "__main__":
    sys.exit(main())
