"""The start-up hooks every ZooServe process runs, explicitly, before BentoML builds its apps.

``serving.server`` (the module ``bentoml serve`` imports) calls ``run`` first: it checks the
BentoML version and applies the patches (``patches``), makes metrics cheap, makes a worker end
with its supervisor (``supervision``), and in the server process verifies every model apart (a
failure inside a worker's start-up leaves ``bentoml serve`` restarting it forever with no port
answering; checking every card and loading every graph first stops start-up with the cause).
Nothing here runs when a module of ``serving`` is merely imported.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

from serving.repository import control
from serving.repository.registry import verify_models_apart
from serving.runtime import patches, supervision


def run(gateway_type: type) -> bool:
    """The hooks for this process; whether the patches were applied (False: BentoML's stock path)."""
    from bentoml._internal.context import server_context

    patched = patches.check()
    if patched:
        patches.apply(gateway_type)
    supervision.exit_with_parent()
    quiet_uvicorn_access_log()
    if server_context.worker_index is None:  # the server process; each worker loads what it runs itself
        verify_models_apart()
        control_dir()
    return patched


def quiet_uvicorn_access_log() -> None:
    """uvicorn calls its access logger for every answer when ``uvicorn.access`` reaches any handler,
    and the root's (which BentoML sets) counts: the level then drops the line, but the call was
    about 1% of a one-house request. ZooServe's access log is BentoML's middleware, switched by
    ``ZOOSERVE_ACCESS_LOG``; uvicorn's own never printed a line."""
    logging.getLogger("uvicorn.access").propagate = False


def control_dir() -> Path:
    """The folder where the API worker tells the others which model versions to serve
    (``repository.control``): made here, in the server process, whose workers inherit its
    environment; one named by ``ZOOSERVE_CONTROL_DIR`` is emptied of a previous server's file."""
    named = os.environ.get("ZOOSERVE_CONTROL_DIR")
    folder = Path(named or tempfile.mkdtemp(prefix="zooserve-control-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not named:  # made here: gone with the server
        atexit.register(shutil.rmtree, folder, True)
    (folder / control.FILE).unlink(missing_ok=True)
    os.environ["ZOOSERVE_CONTROL_DIR"] = str(folder)
    return folder
