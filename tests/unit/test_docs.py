"""The README and the documentation site: a README a user can read, a site whose links hold, no
internal issue numbers anywhere, and the project's duplicate-code check at none."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_LINES = 400


def test_the_readme_is_short_and_its_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LINES
    for target in re.findall(r"\]\(([^)#]+)", readme):
        assert (ROOT / target).exists(), f"README links to {target}, which is not there"


def test_the_site_builds_strictly(tmp_path: Path):
    """``mkdocs build --strict``: a link to a page or picture that is not there, or a page left out
    of the navigation, fails it."""
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    assert (tmp_path / "adding-a-model" / "index.html").exists()


def test_no_internal_issue_numbers_in_docs_or_code():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"\bissues? #?\d+\b", re.IGNORECASE)
    found = [f"{name}:{number}" for name in tracked if name.endswith((".py", ".md", ".js", ".html", ".yaml", ".toml"))
             and (ROOT / name).exists()
             for number, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1)
             if pattern.search(line)]
    assert not found, found


def test_no_duplicate_code():
    """``make lint``: pylint's duplicate-code check (4 similar lines, pyproject.toml) over the project."""
    lint = subprocess.run([sys.executable, "-m", "pylint", "serving", "training", "bench", "loadtests", "tests"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert lint.returncode == 0 and "R0801" not in lint.stdout, lint.stdout[-4000:]
