"""Locust's CSV stats -> a Markdown table per endpoint, checked against ``objectives.toml``.

Exit status 1 when any request failed or a latency objective was exceeded, so ``make loadtest``
can gate a release on it.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tomllib
from pathlib import Path
from typing import Sequence

OBJECTIVES = Path(__file__).with_name("objectives.toml")
COLUMNS = ("requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms")


def _ms(value: str) -> float:
    return float(value) if value not in ("", "N/A") else 0.0  # N/A: no request of that kind


def read_stats(path: Path) -> list[dict[str, float | str]]:
    rows = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({"name": row["Name"], "requests": int(row["Request Count"]),
                         "failures": int(row["Failure Count"]), "req/s": float(row["Requests/s"]),
                         "p50 ms": _ms(row["50%"]), "p95 ms": _ms(row["95%"]), "p99 ms": _ms(row["99%"]),
                         "max ms": _ms(row["Max Response Time"])})
    return rows


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], float_format: str = "{:.1f}") -> str:
    """The one markdown table of the project's reports: first column left, the rest right-aligned,
    floats written with ``float_format`` (the benchmarks use three significant digits)."""
    lines = ["| " + " | ".join(headers) + " |", "| --- |" + " ---: |" * (len(headers) - 1)]
    lines += ["| " + " | ".join(float_format.format(value) if isinstance(value, float) else str(value)
                                for value in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(rows: list[dict], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """``columns`` of ``rows`` (dicts) as a markdown table."""
    return markdown_table(list(headers or columns), [[row[c] for c in columns] for row in rows])


def table(rows: list[dict]) -> str:
    return markdown(rows, ("name", *COLUMNS), ("endpoint", *COLUMNS))


def violations(rows: list[dict], objectives: dict[str, dict[str, float]]) -> list[str]:
    problems = [f"{row['name']}: {row['failures']} failed requests" for row in rows if row["failures"]]
    by_name = {row["name"]: row for row in rows}
    for name, limits in objectives.items():
        if name not in by_name:
            continue  # that family was not part of this run
        for percentile, limit in limits.items():
            measured = by_name[name][f"{percentile} ms"]
            if measured > limit:
                problems.append(f"{name}: {percentile} {measured:.0f} ms > objective {limit} ms")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stats", type=Path, help="Locust's <prefix>_stats.csv")
    parser.add_argument("--objectives", type=Path, default=OBJECTIVES)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    rows = read_stats(args.stats)
    text = table(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    problems = violations(rows, tomllib.loads(args.objectives.read_text()))
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
