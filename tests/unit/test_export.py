"""The shared export step: checker, parity against the native model, and the card it writes."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from serving.repository import layout
from training.export import ExportError, Graph, export_model, sha256_of, torch_writer


def _tiny_graph(reference_offset: float = 0.0, max_exceed_fraction: float = 0.0) -> Graph:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).eval()
    inputs = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)

    def reference(feeds):
        with torch.no_grad():
            out = module(torch.from_numpy(feeds["x"])).numpy()
        out[:2] += reference_offset  # simulate a native model that disagrees on two rows
        return [out]

    return Graph(file="model.onnx", write=torch_writer(module, {"x": inputs[:2]}, ["y"]),
                 reference=reference, parity_inputs={"x": inputs}, units={"y": "logits"},
                 max_exceed_fraction=max_exceed_fraction)


def _evaluate(sessions):
    return {"mean_output": float(sessions["model"].run(None, {"x": np.ones((3, 4), np.float32)})[0].mean())}


CARD = {"task": "tabular-regression", "profile": "quick"}  # what serving's contract needs besides the graphs


def test_export_writes_verified_graph_and_card(tmp_path):
    card = export_model("tiny", {"model": _tiny_graph()}, _evaluate, CARD, tmp_path)
    folder = tmp_path / "tiny" / "1"
    assert json.loads((folder / "card.json").read_text()) == card and card["version"] == "1"
    graph = card["graphs"]["model"]
    assert graph["sha256"] == sha256_of(folder / "model.onnx")
    assert graph["inputs"] == [{"name": "x", "dtype": "float32", "shape": [-1, 4]}]
    assert graph["outputs"][0]["unit"] == "logits"
    assert graph["parity"]["rows"] == 1000 and graph["parity"]["max_abs_diff"] <= 1e-4
    assert "mean_output" in card["metrics"] and card["profile"] == "quick"
    batch = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"x": np.zeros((17, 4), np.float32)})[0]
    assert batch.shape == (17, 2)  # the batch axis is dynamic


def test_each_export_is_a_new_version_and_the_earlier_ones_stay(tmp_path):
    first = export_model("tiny", {"model": _tiny_graph()}, _evaluate, CARD, tmp_path)
    (tmp_path / "tiny" / "3").mkdir()  # a number claimed by a publisher that never finished
    second = export_model("tiny", {"model": _tiny_graph()}, _evaluate, CARD, tmp_path)
    assert (first["version"], second["version"]) == ("1", "4")
    assert [version.path.name for version in layout.versions(tmp_path / "tiny")] == ["1", "4"]
    assert layout.newest(tmp_path / "tiny") == tmp_path / "tiny" / "4" and layout.model_names(tmp_path) == ["tiny"]
    assert json.loads((tmp_path / "tiny" / "1" / "card.json").read_text()) == first


def test_a_model_exported_before_versions_is_older_than_any_numbered_one(tmp_path):
    old = tmp_path / "tiny"
    old.mkdir()
    (old / "card.json").write_text("{}")
    assert layout.newest(old) == old
    export_model("tiny", {"model": _tiny_graph()}, _evaluate, CARD, tmp_path)
    assert [(version.order, version.path) for version in layout.versions(old)] == [(0, old), (1, old / "1")]


def test_parity_failure_publishes_nothing(tmp_path):
    with pytest.raises(ExportError, match="2/1000 rows"):
        export_model("tiny", {"model": _tiny_graph(reference_offset=1e-3)}, _evaluate, CARD, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tree_budget_allows_a_few_rows_over_tolerance(tmp_path):
    card = export_model("tiny", {"model": _tiny_graph(reference_offset=1e-3, max_exceed_fraction=0.002)},
                        _evaluate, CARD, tmp_path)
    assert card["graphs"]["model"]["parity"]["rows_over_atol"] == 2


def test_a_card_serving_would_refuse_is_not_written(tmp_path):
    with pytest.raises(ExportError, match="profile: Input should be 'quick' or 'full'"):
        export_model("tiny", {"model": _tiny_graph()}, _evaluate, {**CARD, "profile": "medium"}, tmp_path)
    assert list(tmp_path.iterdir()) == []
