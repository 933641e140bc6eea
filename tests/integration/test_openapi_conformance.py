"""The OpenAPI document tells the truth: Schemathesis generates requests from ``/docs.json`` for
every operation and checks every answer against it (status, content type, headers, body), that
every schema-valid request is served and that every schema-violating one is refused.

The run is Schemathesis's own CLI with ``schemathesis.toml`` beside this file (all checks, 100
examples per operation, a fixed seed) and ``openapi_hooks`` (real pictures for uploads). The
server caps generation at 4 images and 8 DDIM steps (``ZOOSERVE_MAX_IMAGES``, ``ZOOSERVE_MAX_STEPS``),
which its document then states, so that every valid request it is sent is quick to answer.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from loadtests.server import REPO, free_port, served

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
EXAMPLES = 100


def _cases_per_operation(report: Path) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for line in report.read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            recorder = event["ScenarioFinished"]["recorder"]
            counts[recorder["label"]] += len(recorder.get("cases", {}))  # a skipped phase records none
    return dict(counts)


def _has_inputs(document: dict, label: str) -> bool:
    method, path = label.split(" ", 1)
    operation = document["paths"][path][method.lower()]
    return bool(operation.get("parameters") or operation.get("requestBody"))


def test_every_answer_matches_the_document(trained_models: Path, tmp_path: Path) -> None:
    env = {"ZOOSERVE_MODELS_DIR": str(trained_models), "ZOOSERVE_MAX_IMAGES": "4", "ZOOSERVE_MAX_STEPS": "8"}
    with served(free_port(), tmp_path / "serve.log", env, core=None) as url:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("st")), "--config-file", str(HERE / "schemathesis.toml"), "run",
             f"{url}/docs.json", "--report", "ndjson", "--report-dir", str(tmp_path / "report")],
            cwd=REPO, env={**os.environ, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=900)
        document = httpx.get(f"{url}/docs.json").json()
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
    counts = _cases_per_operation(next((tmp_path / "report").glob("*.ndjson")))
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert set(counts) == operations  # every documented operation was exercised
    few = {label: n for label, n in counts.items() if _has_inputs(document, label) and n < EXAMPLES}
    assert not few, f"operations with inputs that got fewer than {EXAMPLES} generated cases: {few}"
