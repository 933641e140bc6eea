"""Quantised variants: the export step keeps one only where it picks the fp32 graph's classes outside
near ties, and the registry serves it only where its stored check still holds on this CPU."""

from __future__ import annotations

import json

import numpy as np
import torch

from serving.repository import variants
from serving.repository.layout import newest
from serving.repository.registry import Registry, sha256_of
from serving.settings import Settings
from training.export import Graph, cpu_session, export_model, torch_writer

CARD = {"task": "image-classification", "profile": "quick", "labels": ["a", "b", "c"]}
INPUTS = np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32)


def _module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()


def _graphs(copy: torch.nn.Module) -> dict[str, Graph]:
    """The fp32 graph and ``copy`` exported as its variant (a stand-in for the int8 copy)."""
    module, staged = _module(), {}

    def native(feeds):
        with torch.no_grad():
            return [module(torch.from_numpy(feeds["x"])).numpy()]

    def write_copy(path):
        staged["source"] = path.parent / "model.onnx"
        torch_writer(copy, {"x": INPUTS[:2]}, ["logits"])(path)

    return {"model": Graph(file="model.onnx", write=torch_writer(module, {"x": INPUTS[:2]}, ["logits"]),
                           reference=native, parity_inputs={"x": INPUTS}),
            "model_int8": Graph(file="model.int8.onnx", write=write_copy, parity_inputs={"x": INPUTS},
                                reference=lambda feeds: cpu_session(staged["source"]).run(None, feeds),
                                max_exceed_fraction=variants.MAX_FLIP_FRACTION, variant_of="model")}


def _shifted(shift: float) -> torch.nn.Module:
    """The module with every score moved by at most ``shift``: it can only break near ties."""
    copy = _module()
    with torch.no_grad():
        copy[2].bias += torch.tensor([shift, -shift, 0.0])
    return copy


def _permuted() -> torch.nn.Module:
    """The module with its classes swapped: it disagrees wherever the fp32 graph is sure."""
    copy = _module()
    with torch.no_grad():
        copy[2].weight.copy_(copy[2].weight[[1, 2, 0]])
        copy[2].bias.copy_(copy[2].bias[[1, 2, 0]])
    return copy


def _accuracy(sessions):
    scores = sessions["model"].run(None, {"x": INPUTS})[0]
    return {"test_accuracy": float((scores.argmax(1) == (INPUTS[:, 0] > 0)).mean())}


def test_flips_only_count_where_the_fp32_graph_was_decisive():
    reference = np.array([[1.0, 0.99, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    tied = np.array([[0.99, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])  # only the near tie flipped
    assert variants.agreement(tied, reference, tolerance=0.1).holds
    outcome = variants.agreement(tied, reference, tolerance=0.001)
    assert (outcome.top1_changed, outcome.decisive_changed, outcome.allowed) == (1, 1, 0) and not outcome.holds


def test_a_copy_that_only_breaks_near_ties_is_kept_with_a_check_to_rerun(tmp_path):
    card = export_model("toy", _graphs(_shifted(0.05)), _accuracy, CARD, tmp_path)
    variant = card["variants"]["model_int8"]
    assert variant["parity"]["top1_changed"] > 0  # some near ties did break
    assert variant["parity"]["decisive_changed"] == 0 and "variants_left_out" not in card
    check = variant["check"]
    assert check["sha256"] == sha256_of(newest(tmp_path / "toy") / check["file"])
    with np.load(newest(tmp_path / "toy") / check["file"]) as stored:
        assert stored["x"].shape == (variants.CHECK_ROWS, 4) and stored["reference"].shape == (variants.CHECK_ROWS, 3)


def test_a_copy_that_changes_sure_answers_is_left_out_and_the_model_still_exports(tmp_path):
    card = export_model("toy", _graphs(_permuted()), _accuracy, CARD, tmp_path)
    assert "variants" not in card and card.get("served_variant") is None
    assert "model.int8.onnx: the top class differs" in card["variants_left_out"]["model_int8"]
    assert sorted(path.name for path in newest(tmp_path / "toy").iterdir()) == ["card.json", "model.onnx"]


def _served_toy(tmp_path) -> Registry:
    """A registry over the toy model with its kept copy marked as served."""
    card = export_model("toy", _graphs(_shifted(0.05)), _accuracy, CARD, tmp_path)
    card["served_variant"] = "model_int8"
    (newest(tmp_path / "toy") / "card.json").write_text(json.dumps(card))
    return card


def test_the_registry_serves_a_copy_whose_check_holds_on_this_cpu(tmp_path):
    card = _served_toy(tmp_path)
    model = Registry(Settings(models_dir=tmp_path)).get("toy")
    assert model.card.served_variant == "model_int8"
    assert model.summary["sha256"] == card["variants"]["model_int8"]["sha256"]
    assert "agrees with the fp32 graph on this CPU" in model.graph_choice


def test_the_registry_falls_back_to_fp32_where_the_copy_disagrees_on_this_cpu(tmp_path, caplog):
    """The stored fp32 answers swapped stand in for a CPU whose int8 kernels answer otherwise."""
    card = _served_toy(tmp_path)
    check = newest(tmp_path / "toy") / card["variants"]["model_int8"]["check"]["file"]
    with np.load(check) as stored:
        variants.write_check(check, {"x": stored["x"]}, stored["reference"][:, [1, 2, 0]])
    card["variants"]["model_int8"]["check"]["sha256"] = sha256_of(check)
    (newest(tmp_path / "toy") / "card.json").write_text(json.dumps(card))

    model = Registry(Settings(models_dir=tmp_path)).get("toy")
    assert model.card.served_variant is None and model.summary["sha256"] == card["graphs"]["model"]["sha256"]
    assert model.graph_choice.startswith("model.onnx: model.int8.onnx: the top class differs")
    scores = model.run({"x": INPUTS[:8]})[0]
    graph = newest(tmp_path / "toy") / "model.onnx"
    np.testing.assert_allclose(scores, cpu_session(graph).run(None, {"x": INPUTS[:8]})[0])
    assert sum("serving model.onnx instead of model.int8.onnx" in line for line in caplog.messages) == 1
