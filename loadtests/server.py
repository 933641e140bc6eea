"""The one way tests, benchmarks and load tests start a real server.

``python -m serving`` (``serving.runtime.launch``) on a loopback port, each server with a BentoML home of
its own beside its log (BentoML keeps a server's metrics and temporary state there), waited for
until ``/readyz`` answers 200 and stopped as a process group. Standard library only, so that
Locust's environment needs nothing more.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from serving.runtime.launch import serve_command

REPO = Path(__file__).resolve().parents[1]


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
FIRST_EPHEMERAL_PORT = 32768  # Linux's default, where the kernel does not say
LOWEST_PORT = 10000  # below this, ports other services on the host are configured to use
_handed_out: set[int] = set()  # this process's ports, some perhaps not bound yet
_choose = random.Random()  # its own seed: a test that seeds ``random`` must not make two runs pick alike


def free_port() -> int:
    """A loopback port no one holds, below the kernel's ephemeral range. A port-0 probe returned an
    ephemeral port, which the kernel could hand to the next port-0 bind before the server took it:
    BentoML's process controller makes one as a server starts, and got a test's port that way."""
    try:
        first_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = FIRST_EPHEMERAL_PORT
    for _ in range(200):
        port = _choose.randrange(LOWEST_PORT, max(first_ephemeral, LOWEST_PORT + 1000))
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {LOWEST_PORT} and {first_ephemeral}")


def pinned(core: int, command: list[str]) -> list[str]:
    """``command`` on one core (``taskset``), where there are two or more: the load generator gets the other."""
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else command


def start(port: int, log: Path, env: dict[str, str] | None = None, core: int | None = None,
          command: list[str] | None = None) -> subprocess.Popen:
    """ZooServe (or ``command``, another server ``make bench`` compares it with) on ``port``."""
    environment = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(log.parent / f"bentoml-home-{port}"),
                   **(env or {})}
    command = command or serve_command(port)
    command = command if core is None else pinned(core, command)
    with log.open("w") as output:
        return subprocess.Popen(command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Until ``/readyz`` answers 200; the log's tail in the error if the server exits or never gets there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the whole group, then SIGKILL if clients still connected hold the graceful stop."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def served(port: int, log: Path, env: dict[str, str] | None = None, core: int | None = 0,
           command: list[str] | None = None) -> Iterator[str]:
    """A server from start to ready to stopped, pinned to ``core`` (None: not pinned); yields its URL."""
    url = f"http://127.0.0.1:{port}"
    process = start(port, log, env, core, command)
    try:
        wait_ready(url, process, log)
        yield url
    finally:
        stop(process)


def target_parser(description: str | None) -> argparse.ArgumentParser:
    """A load run's command line so far: a server of its own on ``--port``, or a running one at ``--url``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("URL"), help="target a running server instead")
    parser.add_argument("--port", type=int, default=3100)
    return parser
