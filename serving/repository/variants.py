"""Whether a quantised copy of a classifier still picks the classes its fp32 graph picks.

One rule for the export step, which keeps a copy or leaves it out, and for the registry, which
checks the kept copy again on the CPU that serves it: int8 kernels differ by CPU (on AVX2 without
VNNI ONNX Runtime multiplies uint8 by int8 with an instruction that saturates, where VNNI and AMX
do not), so a copy that agreed on the exporting machine may not agree on another.

A flip of the top class counts only where the fp32 graph was decisive: its margin between the top
two scores exceeds the tie tolerance, twice the quantisation's typical error measured at export.
A near tie (common in a toy model trained on a handful of pictures) may break either way without
meaning anything; the tolerance is fixed in the card, so a CPU that computes worse does not widen it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger("bentoml.zooserve")
CHECK_ROWS = 64  # parity rows stored beside a variant for the registry's check (inputs and fp32 scores)
MAX_FLIP_FRACTION = 0.01  # decisive top-1 flips allowed, as a share of the rows (rounded down)
REFERENCE = "reference"  # the fp32 scores' key in the check file; the other keys are the graph's inputs


@dataclass(frozen=True)
class Agreement:
    """How a copy's top classes compare with its fp32 graph's on the same rows."""

    rows: int
    top1_changed: int
    decisive_changed: int  # flips where the fp32 margin exceeds the tie tolerance
    allowed: int
    tie_tolerance: float
    max_abs_diff: float

    @property
    def holds(self) -> bool:
        return self.decisive_changed <= self.allowed

    def as_card(self) -> dict[str, float | int]:
        return asdict(self)

    def describe(self, file: str) -> str:
        return (f"{file}: the top class differs from the fp32 graph's on {self.decisive_changed}/{self.rows} rows "
                f"where the fp32 margin exceeds {self.tie_tolerance:.3g} (allowed: {self.allowed}; "
                f"{self.top1_changed} flips in all, near ties included)")


def tie_tolerance(scores: np.ndarray, reference: np.ndarray) -> float:
    """Twice the median over rows of each row's largest score difference: the copy's typical error.
    Zero where that reaches the fp32 graph's median top-two margin: such a copy is not close to its
    graph (a broken quantisation, a wrong file), and every flip counts."""
    error = 2 * float(np.median(np.abs(scores - reference).max(axis=1)))
    return error if error < float(np.median(_margins(reference))) else 0.0


def _margins(reference: np.ndarray) -> np.ndarray:
    top_two = np.sort(reference, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def agreement(scores: np.ndarray, reference: np.ndarray, tolerance: float,
              max_fraction: float = MAX_FLIP_FRACTION) -> Agreement:
    """``scores`` of the copy against the fp32 graph's ``reference`` (rows x classes)."""
    flipped = scores.argmax(axis=1) != reference.argmax(axis=1)
    decisive = flipped & (_margins(reference) > tolerance)
    return Agreement(rows=len(reference), top1_changed=int(flipped.sum()), decisive_changed=int(decisive.sum()),
                     allowed=int(np.floor(max_fraction * len(reference))), tie_tolerance=tolerance,
                     max_abs_diff=float(np.abs(scores - reference).max(initial=0.0)))


def write_check(path: Path, inputs: dict[str, np.ndarray], reference: np.ndarray) -> None:
    """The rows the registry reruns: the graph's inputs and the fp32 graph's first output on them."""
    with path.open("wb") as handle:  # a handle: np.savez would add ".npz" to a name without it
        np.savez_compressed(handle, **inputs, **{REFERENCE: reference})


def rerun_check(path: Path, run, tolerance: float, max_fraction: float) -> Agreement:
    """The stored rows through ``run`` (feeds -> first output) on this machine, against the stored fp32 scores."""
    with np.load(path) as stored:
        feeds = {key: stored[key] for key in stored.files if key != REFERENCE}
        reference = stored[REFERENCE]
    return agreement(run(feeds), reference, tolerance, max_fraction)
