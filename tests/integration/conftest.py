"""Servers of their own for the integration tests that need other settings (the shared one, `server`, is a
fixture of tests/conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from loadtests.server import free_port, start, stop, wait_ready  # noqa: F401  (for the test modules)


def start_server(models_dir: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """A server over ``models_dir`` as ``make serve`` starts it (``loadtests.server``), not pinned."""
    return start(port, log, {"ZOOSERVE_MODELS_DIR": str(models_dir), **env}, core=None)


def served_graph(card: dict) -> dict:
    """The graph file a card tells the service to run: its int8 variant when that kept the accuracy."""
    variant = card.get("served_variant")
    return card["variants"][variant] if variant else card["graphs"]["model"]
