"""The shape of serving/: importing it has no side effects, and its layers import one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


def test_importing_the_service_patches_nothing_and_starts_no_process():
    """A plain interpreter: BentoML's classes keep their own methods, no child process appears,
    and SQLAlchemy stays out of the processes that keep no prediction log (the supervisor)."""
    probe = """
import multiprocessing, subprocess, sys
started = []
real_popen_init = subprocess.Popen.__init__
def recording_init(self, *args, **kwargs):
    started.append(args[0] if args else kwargs.get("args"))
    real_popen_init(self, *args, **kwargs)
subprocess.Popen.__init__ = recording_init
from _bentoml_impl.server.app import ServiceAppFactory
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from prometheus_client import values
before = (ServiceAppFactory.__call__, ServiceAppFactory.middlewares, ServiceAppFactory.api_endpoint,
          TimeoutMiddleware.__call__, values.ValueClass)
import serving.service, serving.routes
serving.routes.table()
after = (ServiceAppFactory.__call__, ServiceAppFactory.middlewares, ServiceAppFactory.api_endpoint,
         TimeoutMiddleware.__call__, values.ValueClass)
assert before == after, "a patch was applied at import"
assert not started, f"processes started at import: {started}"
assert not multiprocessing.active_children()
assert "sqlalchemy" not in sys.modules, "the prediction log's database library is imported with the log off"
from serving.protocol.gateway import Gateway
from serving.runtime import patches
patches.apply(Gateway)  # what start-up does: the probe sees it
assert (ServiceAppFactory.__call__, TimeoutMiddleware.__call__) != after[::3][:1] + after[3:4]
print("clean")
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("clean"), result.stderr[-2000:]


LAYERS = ["settings", "errors", "heap", "repository", "schemas", "inference", "monitoring", "protocol", "service", "routes",
          "runtime", "server", "__main__", "add"]


def _layer(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else "__init__"
    return LAYERS.index("settings" if part == "__init__" else part)


def test_serving_imports_run_one_way():
    """Each layer of serving/ imports only itself and the layers before it (serving/__init__.py)."""
    root = Path(__file__).resolve().parents[2] / "serving"
    wrong = []
    for path in root.rglob("*.py"):
        module = ".".join(("serving", *path.relative_to(root).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [f"serving.{alias.name}" for alias in node.names] if isinstance(node, ast.ImportFrom)
                     and node.module == "serving" else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for name in names:
                if name.startswith("serving.") and _layer(name) > _layer(module):
                    wrong.append(f"{module} imports {name}")
    assert not wrong, wrong
