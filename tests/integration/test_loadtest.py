"""A few seconds of Locust against the test server: no failed request, and the table is written.
(Latency objectives are not checked here: timings belong to `make loadtest`, not to tests.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def test_short_locust_run(server, tmp_path):
    # 3 users: the diffusion user is one whatever the count (fixed_count), the others share the rest.
    no_objectives = tmp_path / "objectives.toml"
    no_objectives.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "loadtests.run", "--url", server, "--users", "3", "--spawn-rate", "3",
         "--duration", "6s", "--family", "HousePriceUser", "DigitsUser", "DiffusionUser", "--out", str(tmp_path),
         "--objectives", str(no_objectives)],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = (tmp_path / "table.md").read_text()
    assert "/house-price/predict" in table and "/digits/classify" in table and "/generate/diffusion" in table
    assert (tmp_path / "report.html").exists()


def test_a_failed_locust_run_does_not_report_the_previous_one(tmp_path):
    (tmp_path / "run_stats.csv").write_text("stale numbers of an earlier run\n")
    result = subprocess.run(
        [sys.executable, "-m", "loadtests.run", "--url", "http://127.0.0.1:9", "--duration", "1s",
         "--family", "NoSuchUser", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Locust wrote no statistics" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "run_stats.csv").exists() and not (tmp_path / "table.md").exists()


def test_saturation_steps_the_offered_load(server, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadtests.saturation", "--url", server, "--levels", "1", "2", "--duration", "3s",
         "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = (tmp_path / "table.md").read_text()
    assert "| 1 | 5.0 |" in table and "saturation throughput (HousePriceUser" in table


def test_report_fails_on_failed_requests_and_missed_objectives(tmp_path):
    from loadtests.report import violations

    rows = [{"name": "/digits/classify", "requests": 10, "failures": 1, "req/s": 1.0, "p50 ms": 12.0,
             "p95 ms": 20.0, "p99 ms": 30.0, "max ms": 31.0}]
    problems = violations(rows, {"/digits/classify": {"p50": 10, "p99": 40}, "/other": {"p50": 1}})
    assert problems == ["/digits/classify: 1 failed requests", "/digits/classify: p50 12 ms > objective 10 ms"]


def test_a_half_minute_soak_fails_no_request(trained_models, tmp_path):
    """`make soak` for 30 s on its own server: every endpoint family, zero failed requests (``make soak``
    runs it for as long as it is asked: this proves the run, not the hours)."""
    environment = {**os.environ, "ZOOSERVE_MODELS_DIR": str(trained_models)}
    result = subprocess.run(
        [sys.executable, "-m", "loadtests.soak", "--duration", "30s", "--rate", "50", "--sample", "5",
         "--port", str(free_port()), "--out", str(tmp_path)],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "soak.json").read_text())
    assert summary["failures"] == []
    endpoints = {row["name"] for row in summary["stats"]}
    assert {"/house-price/predict", "/digits/classify", "/images/classify", "/passengers/forecast",
            "/v2/models/[name]/infer", "/generate/vae", "/generate/gan", "/generate/diffusion"} <= endpoints
    # Batching is off on a CPU, so no Classifiers worker is started (it would run nothing).
    assert {row["process"] for row in summary["rss"]} == {"supervisor", "zooserve", "zooserve-generators"}
