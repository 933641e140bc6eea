"""Drift and alerts against the real server: the drift gauges move as the course's shifts say,
the shipped alert rules fire on the series a server recorded (``promtool test rules``), and the
Grafana dashboard asks only for metrics the service exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from loadtests.server import free_port, served
from serving.monitoring.drift import MIN_ITEMS
from training import foreign
from training.data import HOUSING_FEATURES, california_housing_split

from tests.pictures import png
from tests.postgres import binaries

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "zooserve.json"
HOUSES = 5000
PICTURES = 120  # letters, then noise pictures: a flag rate's window
PROMQL_WORDS = {"sum", "max", "min", "avg", "by", "without", "rate", "irate", "increase", "histogram_quantile",
                "and", "or", "unless", "le", "count", "abs", "on", "ignoring", "group_left", "group_right"}
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool is not installed (Debian: apt-get install prometheus)")


def _metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (labels, functions and numbers left out)."""
    bare = re.sub(r"\{[^}]*\}", "", expression)  # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)  # grouping labels
    return {word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if word not in PROMQL_WORDS}


def _exported(url: str) -> set[str]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def _gauge(url: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{wanted}}} in /metrics")


@pytest.fixture(scope="module")
def watched(request, trained_models, tmp_path_factory):
    """A server of its own, over the GBM and the digit CNN, so the drift windows hold only this
    test's requests. Drift is kept in memory, whatever the log's database: this server logs to
    PostgreSQL where it is installed (the shared server's tests cover SQLite)."""
    models = tmp_path_factory.mktemp("watched-models")
    for name in ("house-price-gbm", "mnist-cnn"):
        (models / name).symlink_to(trained_models / name)
    folder = tmp_path_factory.mktemp("watched")
    database = (request.getfixturevalue("postgres").create_database("watched") if binaries() else
                f"sqlite:///{folder / 'predictions.db'}")
    with served(free_port(), folder / "serve.log", {"ZOOSERVE_MODELS_DIR": str(models), "ZOOSERVE_PREDICTION_LOG":
                                                    database, "ZOOSERVE_DRIFT_WINDOW": str(HOUSES)}, core=None) as url:
        yield url


def _send_houses(url: str, rows: np.ndarray) -> dict:
    for start in range(0, len(rows), 1000):
        houses = [dict(zip(HOUSING_FEATURES, map(float, row))) for row in rows[start:start + 1000]]
        assert httpx.post(f"{url}/house-price/predict", json={"houses": houses}, timeout=60).status_code == 200
    return httpx.get(f"{url}/models/house-price-gbm/drift", timeout=30).json()


def _annotations(alert: str, labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations with its label templates filled in, as the alert would carry them."""
    rule = next(rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
                if rule["alert"] == alert)
    return {key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
            for key, text in rule["annotations"].items()}


def _loaded(url: str, model: str) -> dict[str, float]:
    """The model's recorded ``zooserve_model_loaded`` series (the drift rules fire only for a served model)."""
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("zooserve_model_loaded{") and f'model="{model}"' in line:
            series, _, value = line.rpartition(" ")
            return {series: float(value)}
    raise AssertionError(f"no zooserve_model_loaded for {model} in /metrics")


def _promtool_test(tmp_path: Path, series: dict[str, float], alert: str, labels: dict[str, str], fires: bool) -> None:
    """promtool test rules over the recorded values, held for 20 minutes: ``alert`` fires or not."""
    expected = [{"exp_labels": {"severity": "warning", **labels},
                 "exp_annotations": _annotations(alert, labels)}] if fires else []
    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": name, "values": f"{value}x20"} for name, value in series.items()],
        "alert_rule_test": [{"eval_time": "15m", "alertname": alert, "exp_alerts": expected}]}]}
    path = tmp_path / f"{alert}-{fires}.test.yml"
    path.write_text(json.dumps(test))  # JSON is YAML
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_richer_houses_drift_and_fire_the_alert_while_test_houses_do_not(watched, tmp_path):
    test = california_housing_split().x_test
    rows = test[np.random.default_rng(0).integers(0, len(test), HOUSES)]
    steady = _send_houses(watched, rows)
    assert steady["items"]["features"] == HOUSES and max(steady["psi"].values()) < 0.1, steady["psi"]
    recorded_steady = _gauge(watched, "zooserve_drift_psi", model="house-price-gbm", feature="MedInc")
    richer = rows.copy()
    richer[:, HOUSING_FEATURES.index("MedInc")] *= 1.5
    drifted = _send_houses(watched, richer)  # the window now holds only the richer houses
    assert drifted["psi"]["MedInc"] > 0.2 and drifted["psi"]["HouseAge"] < 0.1, drifted["psi"]
    recorded_drifted = _gauge(watched, "zooserve_drift_psi", model="house-price-gbm", feature="MedInc")
    assert recorded_steady < 0.1 < 0.2 < recorded_drifted
    series = 'zooserve_drift_psi{model="house-price-gbm",feature="MedInc"}'
    labels = {"model": "house-price-gbm", "feature": "MedInc"}
    loaded = _loaded(watched, "house-price-gbm")
    _promtool_test(tmp_path, {series: recorded_steady, **loaded}, "ZooServeFeatureDrift", labels, fires=False)
    _promtool_test(tmp_path, {series: recorded_drifted, **loaded}, "ZooServeFeatureDrift", labels, fires=True)


def _flag_rate_fires_the_alert(url: str, tmp_path: Path) -> None:
    """The digits' recorded flag rate, with its window's items, fires the shipped alert rule."""
    rate = _gauge(url, "zooserve_ood_flag_rate", model="mnist-cnn")
    items = _gauge(url, "zooserve_drift_window_items", model="mnist-cnn")
    _promtool_test(tmp_path, {'zooserve_ood_flag_rate{model="mnist-cnn"}': rate,
                              'zooserve_drift_window_items{model="mnist-cnn"}': items, **_loaded(url, "mnist-cnn")},
                   "ZooServeOutOfDistributionRate", {"model": "mnist-cnn"}, fires=True)


@needs_promtool
def test_letters_and_then_noise_raise_the_digits_flag_rate_and_its_alert(watched, tmp_path):
    # Printed letters no one would read as a digit, uploaded as PNGs as a client's pictures would be;
    # the digits' window holds only them at first (the other tests of this server send houses).
    letters = foreign.drawings(count=PICTURES, seed=3)["letters"]
    for letter in letters:
        upload = {"image": ("letter.png", png(np.asarray(letter)), "image/png")}
        assert httpx.post(f"{watched}/digits/classify", files=upload, timeout=30).status_code == 200
    report = httpx.get(f"{watched}/models/mnist-cnn/drift", timeout=30).json()
    assert report["items"]["flags"] == PICTURES and report["ood_flag_rate"] > 0.5, report
    _flag_rate_fires_the_alert(watched, tmp_path)
    flagged_letters = report["ood_flag_rate"] * PICTURES
    rng = np.random.default_rng(1)
    for _ in range(PICTURES):
        noise = rng.integers(0, 256, (28, 28)).astype(float).tolist()
        assert httpx.post(f"{watched}/digits/classify", json={"pixels": noise}, timeout=30).status_code == 200
    report = httpx.get(f"{watched}/models/mnist-cnn/drift", timeout=30).json()
    assert report["items"]["flags"] == 2 * PICTURES, report
    assert report["ood_flag_rate"] * 2 * PICTURES - flagged_letters > 0.9 * PICTURES, report  # nearly every noise
    _flag_rate_fires_the_alert(watched, tmp_path)


@needs_promtool
def test_the_shipped_rules_pass_promtool():
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(RULES.with_name("alerts.test.yml"))]):
        result = subprocess.run(["promtool", *command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_the_dashboard_and_the_rules_read_only_metrics_the_service_exports(client, server):
    # Every series the queries read appears once its first observation is made: a house, a digit, a drift report.
    rows = california_housing_split().x_test[:MIN_ITEMS]  # a drift window's PSI needs that many
    house = client.post("/house-price/predict",
                        json={"houses": [dict(zip(HOUSING_FEATURES, map(float, row))) for row in rows]})
    # Feedback waits for its answer's record to be written: the log's counter is there after it.
    assert client.post("/feedback", json={"prediction_id": house.json()["prediction_id"],
                                          "truth": [2.0] * MIN_ITEMS}).status_code == 201
    client.post("/digits/classify", json={"pixels": [[0.0] * 28] * 28})
    client.post("/noop", json={})
    client.get("/models/house-price-gbm/drift")
    exported = _exported(server)
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert len(queries) >= 8 and len(rules) == 6
    read = set().union(*(_metric_names(query) for query in [*queries, *rules]))
    assert {"zooserve_drift_psi", "zooserve_ood_flag_rate", "bentoml_service_request_total"} <= read
    assert sorted(read - exported) == []
