"""What every benchmark section shares: the run's settings, the timer and the Markdown table.

Timings are medians over repeats after a warm-up, so one slow outlier (a page fault, the other
core's work) moves nothing; comparisons are measured side by side in one run and reported as
ratios, which survive a change of machine better than absolute figures do.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnxruntime as ort

from loadtests import report
from serving.repository import layout
from serving.repository.sessions import providers_for, session_options
from serving.settings import Settings

AGREEMENT_ATOL = 1e-3  # engines compared must compute the same thing before their speeds mean anything


PROC_STAT = Path("/proc/stat")


def cpu_jiffies() -> tuple[int, int] | None:
    """The host's CPU time so far as (stolen by the hypervisor, all), from ``/proc/stat``; None off Linux.
    A shared VM's neighbours take "steal" time, and a run during theirs says less about the code."""
    try:
        fields = [int(value) for value in PROC_STAT.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


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


def timed(fn: Callable[[], object], ctx: Context, repeats: int | None = None, warmup: int | None = None,
          budget_s: float | None = None) -> dict[str, float]:
    """Median and 90th percentile wall time of ``fn()`` in milliseconds, after ``ctx.warmup`` calls.

    ``budget_s`` lowers the repeats (to no fewer than 3) so that slow calls (a CNN on 32 photos)
    take about that long in all, judged from the last warm-up call; fast calls keep every repeat.
    """
    repeats, last = repeats or ctx.repeats, 0.0
    for _ in range(ctx.warmup if warmup is None else warmup):
        start = time.perf_counter()
        fn()
        last = time.perf_counter() - start
    if budget_s is not None and last > 0:
        repeats = min(repeats, max(3, int(budget_s / last)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p90_ms": samples[int(0.9 * (len(samples) - 1))],
            "repeats": len(samples)}


def first_call(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()``'s result and seconds: a compiled module's first call on new shapes, its compilation."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def throughput(timing: dict[str, float], rows: int) -> float:
    """Rows per second at the median latency of a call on ``rows`` rows."""
    return rows / (timing["median_ms"] / 1000.0)


def ratio(slower: float, faster: float) -> float:
    return slower / faster if faster > 0 else float("inf")


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    return report.markdown_table(headers, rows, float_format="{:.3g}")


def batch_sizes(ctx: Context) -> tuple[int, int]:
    """One request alone, and a batch as the service's adaptive batching forms (tiny in smoke runs)."""
    return (1, 2) if ctx.smoke else (1, 32)


def ort_session(path: Path, ctx: Context,
                optimization: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                ) -> ort.InferenceSession:
    """A CPU session with the service's own options (``serving.repository.sessions``), on ``ctx.threads`` threads."""
    settings = Settings(device="cpu", intra_op_threads=ctx.threads, inter_op_threads=1)
    return ort.InferenceSession(str(path), sess_options=session_options(settings, optimization),
                                providers=providers_for(settings))


def version_dir(ctx: Context, name: str) -> Path:
    """The folder of the model's newest version in ``ctx.models_dir`` (what the service serves)."""
    return layout.newest(ctx.models_dir / name)


def load_card(ctx: Context, name: str) -> dict[str, Any] | None:
    """The model's card, or None when the model is not in ``ctx.models_dir`` (the section skips it)."""
    path = version_dir(ctx, name) / layout.CARD
    return json.loads(path.read_text()) if path.exists() else None


def missing(name: str, ctx: Context) -> dict[str, str]:
    return {"model": name, "skipped": f"not in {ctx.models_dir}"}


def agreement(reference: Sequence[np.ndarray], other: Sequence[np.ndarray], atol: float = AGREEMENT_ATOL
              ) -> dict[str, Any]:
    """Largest absolute difference over every output pair, whether it is within ``atol``, and the
    largest reference value (a difference means little next to outputs that are all near zero)."""
    pairs = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in zip(reference, other, strict=True)]
    worst = max(float(np.abs(a - b).max(initial=0.0)) for a, b in pairs)
    return {"max_abs_diff": worst, "atol": atol, "agree": worst <= atol,
            "max_abs_reference": max(float(np.abs(a).max(initial=0.0)) for a, _ in pairs)}
