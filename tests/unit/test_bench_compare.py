"""`python -m bench.compare`: two runs' figures as ratios, with the machines' differences first."""

from __future__ import annotations

import json

from bench import common
from bench.__main__ import machine
from bench.compare import SETTINGS, better, compare, main


def _run(rps: float, p99_ms: float, flags: list[str]) -> dict:
    return {"machine": {"cpu": "a CPU", "cpu_flags": flags}, "threads": 1, "smoke": False,
            "sections": {"floor": {"cases": {"/house-price/predict": [{"connections": 8, "rps": rps,
                                                                       "p99_ms": p99_ms, "failures": 0}]}},
                         "engines": {"mnist-cnn": {"max_abs_diff": 1e-6}}}}


def test_each_shared_figure_gets_its_ratio_and_a_verdict_where_its_name_tells(tmp_path, capsys):
    old, new = _run(1000, 10.0, ["avx2", "avx512f"]), _run(800, 9.5, ["avx2"])
    rows = {row["figure"]: row for row in compare(old, new, tolerance=0.1)}
    rps = rows["sections.floor.cases./house-price/predict[0].rps"]
    assert (rps["ratio"], rps["verdict"]) == (0.8, "WORSE")  # a rate 20% lower
    assert rows["sections.floor.cases./house-price/predict[0].p99_ms"]["verdict"] == ""  # 5%: within tolerance
    assert rows["sections.engines.mnist-cnn.max_abs_diff"]["verdict"] == ""  # the name says no direction
    assert all(better(f"sections.prediction-log.{name}") == 0 for name in SETTINGS)  # how a run was made: no verdict
    for name, report in (("old", old), ("new", new)):
        (tmp_path / f"{name}.json").write_text(json.dumps(report))
    assert main([str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--changed-only"]) == 0
    out = capsys.readouterr().out
    assert "machines differ" in out and "only old ['avx512f']" in out
    assert "rps" in out and "WORSE" in out and "p99_ms" not in out
    assert "1 worse by more than 10%" in out


def test_the_machine_description_lists_the_cpu_flags():
    described = machine()
    assert described["cores"] >= 1 and described["cpu_flags"] == sorted(described["cpu_flags"])
    assert "sse2" in described["cpu_flags"] or not described["cpu_flags"]  # every x86-64 CPU has SSE2


def test_steal_share_is_the_hypervisors_part_of_the_cpu_time_between_two_readings(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    monkeypatch.setattr(common, "PROC_STAT", stat)
    stat.write_text("cpu  100 0 50 800 0 0 0 50 0 0\ncpu0 1 2 3\n")
    before = common.cpu_jiffies()
    stat.write_text("cpu  160 0 70 900 0 0 0 70 0 0\ncpu0 1 2 3\n")
    assert before == (50, 1000) and common.steal_share(before, common.cpu_jiffies()) == 20 / 200
    monkeypatch.setattr(common, "PROC_STAT", tmp_path / "absent")
    assert common.cpu_jiffies() is None and common.steal_share(before, None) is None
