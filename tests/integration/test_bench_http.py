"""`make bench`'s HTTP sections in smoke mode: each starts its own servers on the quick models,
batching both on and off, and the report is written. Speed is never judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from serving.repository.catalog import DIGIT_MODELS
from serving.repository.layout import model_names

REPO = Path(__file__).resolve().parents[2]


def test_http_sections_run_and_report(trained_models, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--models-dir", str(trained_models), "--out", str(tmp_path),
         "--only", "overhead", "batching", "cold-start", "digit-classifiers", "floor", "served-accuracy",
         "load-cycles", "prediction-log", "memory"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    sections = report["sections"]
    assert set(sections["overhead"]["stages"]) == {"no-op endpoint", "/house-price/predict",
                                                   "ONNX Runtime call in-process"}
    levels = sections["batching"]["levels"]
    assert set(levels) == {"on", "off"}
    assert all(level["failures"] == 0 and level["requests"] >= level["clients"] for runs in levels.values()
               for level in runs)  # both servers answered every digit
    cold = sections["cold-start"]
    assert cold["models"] == model_names(trained_models)
    digits = sections["digit-classifiers"]["models"]
    assert set(digits) == set(DIGIT_MODELS) and all(row["request"]["repeats"] > 0 for row in digits.values())
    floor = sections["floor"]
    assert set(floor["cases"]) == {"/house-price/predict", "/v2/models/house-price-gbm/infer",
                                   "/v2/models/mnist-cnn/infer", "/digits/classify (PNG)", "/images/classify (JPEG)"}
    points = [point for case in floor["cases"].values() for loop in case.values() for point in loop]
    assert all(side["failures"] == 0 and side["requests"] > 0 for point in points for side in point.values())
    logged = sections["prediction-log"]
    assert all(point["failures"] == 0 and point["ratio"] > 0 and len(point["ratios"]) == logged["rounds"]
               for point in logged["points"])
    assert logged["rows_in_log"] >= logged["answered_with_log"] > 0  # every answer of the logged server kept
    assert floor["memory"]["idle"]["processes"] >= 2 and floor["memory"]["idle"]["rss_mb"] > 0
    served = sections["served-accuracy"]["models"]
    assert set(served) == {"mnist-cnn", "transfer-cnn"} and all(row["served_accuracy"] > 0.5 for row in served.values())
    markdown = (tmp_path / "bench.md").read_text()
    for title in ("Serving overhead", "Adaptive batching on vs off", "Cold start", "Digit classifiers",
                  "Serving overhead against the floor", "Test accuracy through the served path",
                  "Memory over load and unload", "The whole zoo's memory"):
        assert f"### {title}" in markdown
    cycles = sections["load-cycles"]
    assert cycles["models"] == model_names(trained_models) and cycles["cycles"] == 3
    assert cycles["after"]["processes"] == cycles["before"]["processes"] >= 3  # the workers survived every swap
    memory = sections["memory"]
    assert memory["models"] == model_names(trained_models)
    for state in ("idle", "after_answers"):  # every process of a server with generators, each measured
        assert sorted(row["process"] for row in memory[state]) == ["supervisor", "zooserve", "zooserve-generators"]
        assert all(row["rss_mb"] >= row["pss_mb"] >= row["uss_mb"] > 0 for row in memory[state])
