"""Servers of their own for the integration tests that need other settings (the shared one, `server`, is a
fixture of tests/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from loadtests.server import free_port, start, stop, wait_ready  # noqa: F401  (for the test modules)
from serving.repository.layout import newest


def start_server(models_dir: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """A server over ``models_dir`` as ``make serve`` starts it (``loadtests.server``), not pinned."""
    return start(port, log, {"ZOOSERVE_MODELS_DIR": str(models_dir), **env}, core=None)


def served_graph(card: dict) -> dict:
    """The graph file a card tells the service to run: its int8 variant when that kept the accuracy."""
    variant = card.get("served_variant")
    return card["variants"][variant] if variant else card["graphs"]["model"]


def answered_by(response, models_dir: Path, name: str) -> dict:
    """A 200 answer's body, checked to name the model that answered as its card does."""
    assert response.status_code == 200, response.text
    body = response.json()
    card = json.loads((newest(models_dir / name) / "card.json").read_text())
    assert body["model"] == {"name": name, "version": card["version"], "sha256": card["graphs"]["model"]["sha256"]}
    return body


def start_up_refused(models_dir: Path, log: Path, within: float = 120) -> str:
    """The log of a server over ``models_dir`` that must stop at start-up; serving fails the test."""
    process = start_server(models_dir, free_port(), log)
    try:
        code = process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the server over {models_dir} started where it must refuse")
    assert code != 0
    return log.read_text()


def comparable(response) -> dict:
    """A JSON answer but for the id the prediction log gives each answer (two answers never share one)."""
    body = response.json()
    body.pop("prediction_id", None)
    return body


def refused_naming(response, field: str) -> None:
    """A 400 whose message starts with the field the request got wrong."""
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(field)
