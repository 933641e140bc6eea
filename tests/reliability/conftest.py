"""Servers for the reliability tests: each test that stresses, starves or kills a server gets its own."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import psutil
import pytest

from tests.integration.conftest import free_port, start_server, stop, wait_ready

HOUSE = {"MedInc": 8.3252, "HouseAge": 41.0, "AveRooms": 6.984, "AveBedrms": 1.024, "Population": 322.0,
         "AveOccup": 2.556, "Latitude": 37.88, "Longitude": -122.23}


@dataclass
class Served:
    url: str
    port: int
    process: "psutil.Popen | object"
    log: Path

    def worker(self, service: str) -> psutil.Process:
        """A worker process of this server: ``zooserve`` (the API), ``zooserve-generators`` or ``-classifiers``."""
        for child in psutil.Process(self.process.pid).children(recursive=True):
            command = child.cmdline()
            if "--service-name" in command and command[command.index("--service-name") + 1] == service:
                return child
        raise LookupError(f"no {service} worker under {self.process.pid}")

    def house(self, client: httpx.Client) -> int:
        return client.post(f"{self.url}/house-price/predict", json={"houses": [HOUSE]}).status_code


@contextlib.contextmanager
def serving(models: Path, directory: Path, **env: str) -> Iterator[Served]:
    port = free_port()
    log = directory / f"serve-{port}.log"
    process = start_server(models, port, log, **env)
    served = Served(f"http://127.0.0.1:{port}", port, process, log)
    try:
        wait_ready(served.url, process, log)
        yield served
    finally:
        stop(process)


@pytest.fixture(scope="module")
def tight(trained_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Small limits, so that exhausting them takes a few requests: 4 predictions, 2 generations in
    flight, 3 s to send a body."""
    with serving(trained_models, tmp_path_factory.mktemp("tight"), ZOOSERVE_MAX_CONCURRENCY="4",
                 ZOOSERVE_MAX_GENERATIONS="2", ZOOSERVE_BODY_TIMEOUT_SECONDS="3") as served:
        yield served


@pytest.fixture(scope="module")
def plain(trained_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(trained_models, tmp_path_factory.mktemp("plain")) as served:
        yield served
