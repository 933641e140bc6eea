"""Models in and out of service while the server runs, as Triton's client drives it at its defaults:
the repository index, load (with a version policy) and unload, readiness and inference of a named
version; a broken new version never replaces the one serving; an unloaded model is a 404 in the
one error shape; with ZOOSERVE_WATCH a new version serves without a call; the batched classifier
worker follows a swap and every answer names the version that computed it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from loadtests.server import free_port, served
from training.data import mnist_arrays

from tests.unit.test_repository import ROW, publish_copy

from .conftest import answered_by

GBM, CNN = "house-price-gbm", "mnist-cnn"
HOUSE = dict(zip(["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"],
                 ROW["features"][0].tolist()))
PIXELS = {"pixels": mnist_arrays(train=False)[0][0].tolist()}  # a real test digit


def _models(trained_models: Path, root: Path) -> Path:
    """Two published versions each of the house-price GBM and the digit CNN."""
    root.mkdir()
    for name in (GBM, CNN):
        for _ in range(2):
            publish_copy(trained_models, root, name)
    return root


@pytest.fixture(scope="module")
def repository(trained_models, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A server of its own over the two-version models, the digits batched in the Classifiers worker."""
    root = tmp_path_factory.mktemp("repository")
    models = _models(trained_models, root / "models")
    with served(free_port(), root / "serve.log", {"ZOOSERVE_MODELS_DIR": str(models), "ZOOSERVE_BATCHING": "on"},
                core=None) as url:
        yield url, models


@pytest.fixture
def triton_client(repository) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=repository[0].removeprefix("http://"))


def _states(client: triton.InferenceServerClient, name: str) -> dict[str, str]:
    return {entry["version"]: entry["state"] for entry in client.get_model_repository_index() if entry["name"] == name}


def test_the_index_and_a_load_by_policy_then_inference_on_a_named_version(repository, triton_client):
    url, models = repository
    assert _states(triton_client, GBM) == {"1": "UNAVAILABLE", "2": "READY"}
    assert triton_client.is_model_ready(GBM, "2") and not triton_client.is_model_ready(GBM, "1")
    triton_client.load_model(GBM, config=json.dumps({"version_policy": {"all": {}}}))
    assert _states(triton_client, GBM) == {"1": "READY", "2": "READY"} and triton_client.is_model_ready(GBM, "1")
    features = triton.InferInput("features", list(ROW["features"].shape), "FP32")
    features.set_data_from_numpy(ROW["features"])
    answer = triton_client.infer(GBM, [features], model_version="1")
    expected = ort.InferenceSession(str(models / GBM / "1" / "model.onnx")).run(None, ROW)[0]
    assert answer.get_response()["model_version"] == "1" and np.allclose(answer.as_numpy("value"), expected)
    # A request naming no version gets the newest loaded, and says so.
    body = answered_by(httpx.post(f"{url}/house-price/predict", json={"houses": [HOUSE]}), models, GBM)
    assert body["model"]["version"] == "2"


def test_an_unloaded_model_is_a_404_in_the_one_shape_until_it_is_loaded_again(repository, triton_client):
    url, _ = repository
    triton_client.unload_model(GBM)
    refused = httpx.post(f"{url}/house-price/predict", json={"houses": [HOUSE]})
    assert refused.status_code == 404 and "not loaded" in refused.json()["error"]
    assert httpx.post(f"{url}/v2/models/{GBM}/infer", json={"inputs": []}).status_code == 404
    assert not triton_client.is_model_ready(GBM) and set(_states(triton_client, GBM).values()) == {"UNAVAILABLE"}
    unknown = httpx.post(f"{url}/v2/repository/models/no-such-model/load")
    assert unknown.status_code == 404 and "no published version" in unknown.json()["error"]
    triton_client.load_model(GBM)
    assert httpx.post(f"{url}/house-price/predict", json={"houses": [HOUSE]}).status_code == 200


def test_a_broken_new_version_keeps_the_old_one_serving_and_says_why(repository, triton_client, trained_models):
    url, models = repository
    serving = httpx.post(f"{url}/house-price/predict", json={"houses": [HOUSE]}).json()["model"]["version"]
    broken = publish_copy(trained_models, models, GBM)
    with (models / GBM / broken / "model.onnx").open("ab") as graph:
        graph.write(b"\0")
    with pytest.raises(InferenceServerException, match="sha256") as refused:
        triton_client.load_model(GBM)
    assert refused.value.status() == "400"
    assert httpx.post(f"{url}/house-price/predict", json={"houses": [HOUSE]}).json()["model"]["version"] == serving
    assert _states(triton_client, GBM)[broken] == "UNAVAILABLE"


def test_the_batched_worker_follows_a_swap_and_each_answer_names_its_version(repository, triton_client):
    url, _ = repository
    assert httpx.post(f"{url}/digits/classify", json=PIXELS).json()["model"]["version"] == "2"
    triton_client.load_model(CNN, config=json.dumps({"version_policy": {"specific": {"versions": [1]}}}))
    named, deadline = [], time.monotonic() + 20
    while (not named or named[-1] != "1") and time.monotonic() < deadline:
        answer = httpx.post(f"{url}/digits/classify", json=PIXELS)
        assert answer.status_code == 200, answer.text
        named.append(answer.json()["model"]["version"])
    assert named[-1] == "1" and set(named) <= {"1", "2"}, named


def _default_of(url: str, body: dict, expected: str) -> str:
    """The version answering ``/digits/classify`` once the batched worker has followed a change to ``expected``."""
    deadline, version = time.monotonic() + 20, None
    while version != expected and time.monotonic() < deadline:
        version = httpx.post(f"{url}/digits/classify", json=body).json()["model"]["version"]
    return version


def _zooserve_series(url: str) -> list[str]:
    return [line for line in httpx.get(f"{url}/metrics").text.splitlines() if line.startswith("zooserve_model_")]


def test_rest_requests_name_a_version_and_a_load_pins_the_one_they_get_by_default(repository, triton_client):
    url, _ = repository
    triton_client.load_model(CNN, config=json.dumps({"version_policy": {"all": {}}}))
    for version in ("1", "2"):
        answer = httpx.post(f"{url}/digits/classify", json={**PIXELS, "version": version})
        assert answer.json()["model"]["version"] == version, answer.text
        house = httpx.post(f"{url}/house-price/predict", json={"houses": [HOUSE], "version": int(version)})
        assert house.json()["model"]["version"] == version, house.text
    missing = httpx.post(f"{url}/digits/classify", json={**PIXELS, "version": "9"})
    assert missing.status_code == 404 and "no version '9' loaded" in missing.json()["error"]
    pinned = httpx.post(f"{url}/v2/repository/models/{CNN}/load", json={"parameters": {"default_version": "1"}})
    assert pinned.json() == {"name": CNN, "versions": ["1", "2"], "default_version": "1", "pinned": "1"}
    assert _default_of(url, PIXELS, "1") == "1"
    listed = {entry["name"]: entry for entry in httpx.get(f"{url}/models").json()}[CNN]
    assert (listed["version"], listed["versions"], listed["pinned"]) == ("1", ["1", "2"], "1")
    assert f'zooserve_model_version{{model="{CNN}"}} 1.0' in _zooserve_series(url)
    unpinned = httpx.post(f"{url}/v2/repository/models/{CNN}/load", json={"parameters": {"default_version": None}})
    assert unpinned.json()["default_version"] == "2" and unpinned.json()["pinned"] is None
    assert _default_of(url, PIXELS, "2") == "2"
    # Prometheus: a series per model, none per version, so versions coming and going leave none behind.
    triton_client.unload_model(CNN)
    series = _zooserve_series(url)
    assert not [line for line in series if 'version="' in line], series
    assert f'zooserve_model_loaded{{model="{CNN}",providers="CPUExecutionProvider"}} 0.0' in series
    triton_client.load_model(CNN)


def test_with_watch_on_a_new_version_serves_without_a_call(trained_models, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    publish_copy(trained_models, models, GBM)
    with served(free_port(), tmp_path / "serve.log", {"ZOOSERVE_MODELS_DIR": str(models), "ZOOSERVE_WATCH": "on"},
                core=None) as url:
        assert httpx.post(f"{url}/house-price/predict", json={"houses": [HOUSE]}).json()["model"]["version"] == "1"
        publish_copy(trained_models, models, GBM)
        deadline, version = time.monotonic() + 30, "1"
        while version != "2" and time.monotonic() < deadline:
            time.sleep(0.5)
            version = httpx.post(f"{url}/house-price/predict", json={"houses": [HOUSE]}).json()["model"]["version"]
        assert version == "2"
