"""The one way ZooServe starts a server: ``python -m serving [BENTO] [--host H] [--port P] [bentoml serve options]``.

It is ``bentoml serve serving.server:ZooServe`` with a Prometheus directory of its own. BentoML keeps
the metrics of all its worker processes in ``$BENTOML_HOME/prometheus_multiproc_dir`` and deletes
that directory whenever any server starts (``bentoml.serving.ensure_prometheus_dir``), so two
servers on one host (tests and a bench, two deployments) wiped each other's ``zooserve_*`` series.
Each server launched here writes under ``$BENTOML_HOME/prometheus/<pid>`` instead; directories of
servers that are no longer running are removed at start.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SERVICE = "serving.server:ZooServe"


def serve_command(port: int, host: str = "127.0.0.1", python: str = sys.executable) -> list[str]:
    """The command line that starts a server (tests, bench and load tests use it too)."""
    return [python, "-m", "serving", "--host", host, "--port", str(port)]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def private_prometheus_dir(home: Path, pid: int) -> Path:
    root = home / "prometheus"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and int(old.name) != pid and not _running(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    return root / str(pid)


def main(argv: list[str] | None = None) -> None:
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml_cli.cli import cli

    directory = private_prometheus_dir(Path(BentoMLContainer.bentoml_home.get()), os.getpid())
    BentoMLContainer.prometheus_multiproc_dir.set(str(directory))
    args = sys.argv[1:] if argv is None else argv
    target = [] if args and not args[0].startswith("-") else [SERVICE]  # a Bento tag may come first
    cli(["serve", *target, *args], prog_name="python -m serving")
