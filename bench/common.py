"""What every benchmark section shares: the run's settings, the timer and the Markdown table.

Timings are medians over repeats after a warm-up, so one slow outlier (a page fault, the other
core's work) moves nothing; comparisons are measured side by side in one run and reported as
ratios, which survive a change of machine better than absolute figures do.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Context:
    models_dir: Path
    smoke: bool = False  # tiny repeats and sizes: the suite checks the harness, not the speed
    threads: int = 1  # intra-op threads for both engines, the same on each side of a comparison
    warmup: int = 5
    repeats: int = 50

    @classmethod
    def create(cls, models_dir: Path, smoke: bool, threads: int) -> "Context":
        return cls(models_dir, smoke, threads, *((1, 3) if smoke else (5, 50)))


def timed(fn: Callable[[], object], ctx: Context, repeats: int | None = None) -> dict[str, float]:
    """Median and 90th percentile wall time of ``fn()`` in milliseconds, after ``ctx.warmup`` calls."""
    for _ in range(ctx.warmup):
        fn()
    samples = []
    for _ in range(repeats or ctx.repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p90_ms": samples[int(0.9 * (len(samples) - 1))],
            "repeats": len(samples)}


def ratio(slower: float, faster: float) -> float:
    return slower / faster if faster > 0 else float("inf")


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
