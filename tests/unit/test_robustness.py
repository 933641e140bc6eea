"""The picture families of ``bench.robustness`` and the harness itself, on the quick digit model."""

from __future__ import annotations

import json

import pytest

from bench import robustness
from bench.digit_pictures import FAMILIES, family
from serving.inference.images import decode


@pytest.mark.parametrize("name", list(FAMILIES))
def test_families_are_reproducible_decodable_pictures_of_each_digit(name):
    pictures = family(name, 20, seed=3)
    assert pictures == family(name, 20, seed=3) and pictures != family(name, 20, seed=4)
    assert [label for label, _ in pictures] == [i % 10 for i in range(20)]
    for _, data in pictures:
        assert min(decode(data).size) >= 64


def test_the_report_reads_every_family_through_the_upload_path(trained_models, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSERVE_REPORTS_DIR", str(tmp_path))
    robustness.main(["--models-dir", str(trained_models), "--per-family", "30"])
    report = json.loads((tmp_path / "robustness" / "robustness.json").read_text())
    rows = {row["family"]: row for row in report["rows"]}
    assert set(rows) == set(FAMILIES) and all(row["pictures"] == 30 for row in rows.values())
    # Uneven light and noise are what the old "border level + 5%" preprocessing failed on (14% and 42%).
    assert rows["gradient"]["accuracy"] >= 0.8 and rows["noise-jpeg"]["accuracy"] >= 0.8
    assert all((tmp_path / "robustness" / f"{name}.png").stat().st_size > 0 for name in FAMILIES)
