"""Any ONNX model, trained elsewhere, served over /v2: ``python -m serving.add`` writes its card from
the graph and publishes it, and Triton's client reads what ONNX Runtime computes in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import tritonclient.http as triton
from onnx import TensorProto, helper

from loadtests.server import free_port, served

REPO = Path(__file__).resolve().parents[2]


def _add(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serving.add", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def foreign_graph(tmp_path_factory) -> Path:
    """A small network from a few lines of torch: not trained here, no card."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).eval()
    path = tmp_path_factory.mktemp("foreign") / "scores.onnx"
    torch.onnx.export(network, (torch.zeros(1, 3),), str(path), input_names=["x"], output_names=["scores"],
                      dynamic_axes={"x": {0: "batch"}, "scores": {0: "batch"}}, dynamo=False)
    return path


def test_an_added_graph_serves_on_v2_with_the_numbers_onnx_runtime_gives(foreign_graph, tmp_path):
    models = tmp_path / "models"
    added = _add(str(foreign_graph), "--name", "my-scores", "--labels", "no,yes", "--models-dir", str(models))
    assert added.returncode == 0, added.stderr
    assert "my-scores: published version 1" in added.stdout
    card = json.loads((models / "my-scores" / "1" / "card.json").read_text())
    assert card["task"] == "onnx-model" and card["labels"] == ["no", "yes"] and card["graphs"]["model"]["opset"] > 0
    assert card["graphs"]["model"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": [-1, 3]}]
    rows = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    expected = ort.InferenceSession(str(foreign_graph)).run(None, {"x": rows})[0]
    with served(free_port(), tmp_path / "serve.log", {"ZOOSERVE_MODELS_DIR": str(models)}, core=None) as url:
        client = triton.InferenceServerClient(url=url.removeprefix("http://"))
        assert client.is_model_ready("my-scores", "1")
        tensor = triton.InferInput("x", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        answer = client.infer("my-scores", [tensor])
        np.testing.assert_allclose(answer.as_numpy("scores"), expected, rtol=1e-6, atol=1e-6)
        assert answer.get_response()["model_version"] == "1"


def test_a_graph_with_a_tensor_v2_cannot_carry_is_refused_naming_it(tmp_path):
    graph = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])], "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, [None])]),
        ir_version=10, opset_imports=[helper.make_opsetid("", 17)])  # what this ONNX Runtime reads
    path = tmp_path / "strings.onnx"
    onnx.save(graph, str(path))
    refused = _add(str(path), "--name", "strings", "--models-dir", str(tmp_path / "models"))
    assert refused.returncode == 2 and "input 'text' is tensor(string): /v2 carries only" in refused.stderr
    assert not (tmp_path / "models" / "strings").exists()


def test_the_name_of_a_model_a_rest_endpoint_serves_is_refused(foreign_graph, tmp_path):
    refused = _add(str(foreign_graph), "--name", "mnist-cnn", "--models-dir", str(tmp_path / "models"))
    assert refused.returncode == 2 and "the REST endpoints serve" in refused.stderr
