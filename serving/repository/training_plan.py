"""The first run's training plan, as ``python -m training --progress FILE`` keeps it: every model the
run was asked to train, in order, with its estimate and state (queued, training, done, failed).

The server reads it to answer for the models still to come: a 503 with ``Retry-After`` and the time
each still needs, their progress in ``GET /models``, and ``/readyz`` once all are loaded. The trainer
replaces the file whole (write, then rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from serving.repository import layout
from serving.settings import Settings

MIN_SECONDS_LEFT = 5  # what a model past its estimate is said to need still


@dataclass(frozen=True)
class Pending:
    """A model of the plan that this server cannot answer for yet."""

    name: str
    state: str  # queued, training, loading (its card is written) or failed
    seconds_left: float
    progress: float  # of its own training, by its estimate: 0 queued, 1 done
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        entry = {"name": self.name, "state": self.state, "progress": round(self.progress, 3),
                 "seconds_left": round(self.seconds_left)}
        return entry if self.error is None else {**entry, "error": self.error}

    def message(self) -> str:
        if self.state == "failed":
            return f"model {self.name!r} failed to train in this server's first run ({self.error}); see its log"
        return (f"model {self.name!r} is {self.state} in this server's first run "
                f"({self.progress:.0%} done by its estimate): about {duration(self.seconds_left)} left")


def duration(seconds: float) -> str:
    """Seconds as a person reads them: "40 s", "12 min"."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def read(path: Path | None) -> dict[str, Any] | None:
    """The plan, or None where there is none (no first run, or its file not written yet)."""
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def planned(path: Path | None) -> list[str]:
    """Every model the first run was asked to train."""
    plan = read(path)
    return [] if plan is None else [entry["name"] for entry in plan["models"]]


def any_expected(settings: Settings, names: Iterable[str]) -> bool:
    """Whether this server has, or its first run will train, any of these models."""
    coming = planned(settings.training_progress)
    return any(layout.card_file(settings.models_dir, name).exists() or name in coming for name in names)


def _trainer_gone(plan: dict[str, Any]) -> bool:
    try:
        os.kill(int(plan["pid"]), 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError):
        pass
    return False


def pending(plan: dict[str, Any] | None, loaded: set[str], now: float | None = None) -> dict[str, Pending]:
    """The plan's models not in ``loaded``, each with the time it still needs: its own estimate
    left plus that of every model before it in the queue."""
    if plan is None:
        return {}
    now = time.time() if now is None else now
    stopped = _trainer_gone(plan)
    waiting, ahead = {}, 0.0
    for entry in plan["models"]:
        name, state, estimate = entry["name"], entry["state"], float(entry["estimate_seconds"])
        if state == "training":
            elapsed = now - float(entry["started_at"])
            own, progress = max(estimate - elapsed, MIN_SECONDS_LEFT), min(elapsed / estimate, 0.99)
        else:
            own, progress = (0.0, 1.0) if state == "done" else (estimate, 0.0)
        ahead += own
        if name in loaded:
            continue
        if state == "done":
            waiting[name] = Pending(name, "loading", MIN_SECONDS_LEFT, 1.0)
        elif state == "failed" or stopped:
            waiting[name] = Pending(name, "failed", 0.0, progress, entry.get("error") or "the training run stopped")
        else:
            waiting[name] = Pending(name, state, ahead, progress)
    return waiting
