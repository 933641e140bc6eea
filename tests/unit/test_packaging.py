"""The served container's dependencies stay the serving set: equal to pyproject's, without torch."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_bentofile_packages_match_pyproject_serving_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    assert sorted(bentofile["python"]["packages"]) == sorted(project["dependencies"])


def test_serving_never_imports_training_code_or_frameworks():
    pattern = re.compile(r"^\s*(import|from)\s+(torch|torchvision|sklearn|training)\b", re.MULTILINE)
    offenders = [path.name for path in (REPO / "serving").rglob("*.py") if pattern.search(path.read_text())]
    assert offenders == []
