"""The training plan a first run's server reads (``serving.repository.training_plan``): every model this run
trains, in order, with its estimate and state, rewritten whole at each change (write, then rename)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class Progress:
    """Keeps ``path`` up to date as models train; with no path it records nothing."""

    def __init__(self, path: Path | None, profile: str, estimates: dict[str, float]) -> None:
        self.path, self.profile = path, profile
        self.models = [{"name": name, "state": "queued", "estimate_seconds": round(seconds, 1)}
                       for name, seconds in estimates.items()]
        self._write()

    def _entry(self, name: str) -> dict:
        return next(entry for entry in self.models if entry["name"] == name)

    def start(self, name: str) -> None:
        self._entry(name).update(state="training", started_at=time.time())
        self._write()

    def finish(self, name: str, seconds: float) -> None:
        self._entry(name).update(state="done", seconds=round(seconds, 1))
        self._write()

    def fail(self, name: str, error: str) -> None:
        self._entry(name).update(state="failed", error=error)
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        staged.write_text(json.dumps({"profile": self.profile, "pid": os.getpid(), "models": self.models}, indent=1))
        staged.replace(self.path)
