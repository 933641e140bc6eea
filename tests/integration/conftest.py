"""The real server (`python -m serving`, i.e. `bentoml serve`) on a free loopback port, over the tiny models trained for the session."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from serving.launch import serve_command

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(models_dir: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """A server as ``make serve`` starts it, with a BentoML home of its own beside its log."""
    home = log.parent / f"bentoml-home-{port}"
    environment = {**os.environ, "ZOOSERVE_MODELS_DIR": str(models_dir), "BENTOML_DO_NOT_TRACK": "True",
                   "BENTOML_HOME": str(home), **env}
    return subprocess.Popen(serve_command(port), cwd=REPO, env=environment, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)


@pytest.fixture(scope="session")
def server(trained_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("server") / "serve.log"
    process = start_server(trained_models, port, log)
    try:
        wait_ready(url, process, log)
        yield url
    finally:
        stop(process)


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http
