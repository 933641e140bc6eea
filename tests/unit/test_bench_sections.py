"""The benchmark sections in smoke mode on the quick-trained models: structure and sanity only.

Timings and speed ratios are never asserted (they belong in the benchmark's report); what is
checked is that every model and step count is there, that the engines compared computed the
same thing, that accuracies are fractions, and that each section renders a Markdown table.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import diffusion_speed, engines, pytorch, quantization
from bench.common import AGREEMENT_ATOL, Context, batch_sizes

SECTIONS = (engines, diffusion_speed, quantization)
BN_FREE = ("house-price-mlp", "passengers", "vae")  # no BatchNorm to fold: the served graph is timed


@pytest.fixture(scope="module")
def smoke(trained_models) -> Context:
    return Context.create(trained_models, smoke=True, threads=1)


@pytest.fixture(scope="module")
def results(smoke: Context) -> dict[str, dict]:
    return {section.__name__: section.run(smoke) for section in SECTIONS}


def _is_table(markdown: str) -> bool:
    lines = markdown.splitlines()
    return lines[0].startswith("### ") and any(line.startswith("| ") for line in lines) and "|" + " --- |" in markdown


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.__name__.split(".")[-1])
def test_results_are_json_and_render_a_table(section, results):
    result = results[section.__name__]
    assert json.loads(json.dumps(result)) == result
    assert _is_table(section.markdown(result))


def test_engines_cover_every_model_on_the_same_weights(results, smoke):
    result = results[engines.__name__]
    assert [entry["model"] for entry in result["models"]] == list(engines.MODELS)
    for entry in result["models"]:
        assert "skipped" not in entry, entry
        assert entry["graph_timed"] in (pytorch.SERVED, pytorch.FRESH)
        assert [row["batch"] for row in entry["batches"]] == list(batch_sizes(smoke))
        for row in entry["batches"]:
            assert row["agreement"]["agree"] and row["agreement"]["max_abs_diff"] <= AGREEMENT_ATOL
            assert {"onnxruntime", "pytorch", "pytorch_over_ort"} <= set(row)
    timed = {entry["model"]: entry["graph_timed"] for entry in result["models"]}
    assert all(timed[name] == pytorch.SERVED for name in BN_FREE)
    mnist = next(entry for entry in result["models"] if entry["model"] == "mnist-cnn")
    assert isinstance(mnist["batches"][0]["objective"]["met"], bool)  # batch 1 carries the objective
    markdown = engines.markdown(result)
    assert all(name in markdown for name in engines.MODELS) and "house-price-gbm" in markdown


def test_diffusion_samplers_agree_at_every_step_count(results):
    result = results[diffusion_speed.__name__]
    assert result["graph_compared"] in (pytorch.SERVED, pytorch.FRESH)
    assert [row["steps"] for row in result["steps"]] == [2, 3]
    for row in result["steps"]:
        assert row["agreement"]["agree"] and row["agreement"]["max_abs_diff"] <= AGREEMENT_ATOL
        assert {"onnxruntime", "pytorch", "pytorch_over_ort"} <= set(row)
        assert ("onnxruntime_served" in row) == (result["graph_compared"] == pytorch.FRESH)
    assert result["objective"]["met"] is None  # smoke runs never reach the objective's 16 images at 50 steps


def test_quantization_scores_every_variant(results, smoke):
    result = results[quantization.__name__]
    assert [entry["model"] for entry in result["models"]] == list(quantization.MODELS)
    for entry in result["models"]:
        names = [variant["variant"] for variant in entry["variants"]]
        assert names == [quantization.BASELINE, "int8 dynamic", "int8 static QDQ", quantization.FP16]
        for variant in entry["variants"]:
            assert "failed" not in variant, variant
            assert 0.0 <= variant["accuracy"] <= 1.0 and variant["file_bytes"] > 0
            assert variant["verdict"] in ("baseline", "keep") or variant["verdict"].startswith(("rejected (",
                                                                                                 "accuracy only"))
            timed = variant["latency"] is not None
            assert timed == (variant["variant"] != quantization.FP16)
    levels = result["optimization_levels"]
    assert [row["batch"] for row in levels["batches"]] == list(batch_sizes(smoke))
    assert all(set(quantization.LEVELS) <= set(row) for row in levels["batches"])


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.__name__.split(".")[-1])
def test_missing_models_are_skipped_not_fatal(section, tmp_path):
    result = section.run(Context.create(tmp_path, smoke=True, threads=1))
    assert "skipped" in json.dumps(result)
    assert section.markdown(result).startswith("### ")


def _variant(change_pp: float, *medians: float) -> dict:
    return {"accuracy_change_pp": change_pp,
            "latency": [{"batch": batch, "median_ms": median} for batch, median in zip((1, 32), medians)]}


def test_quantization_verdict_needs_accuracy_and_speed():
    baseline = _variant(0.0, 1.0, 10.0)
    assert quantization.verdict(_variant(-0.05, 0.5, 5.0), baseline) == "keep"
    assert quantization.verdict(_variant(-0.1, 0.5, 5.0), baseline).startswith("rejected (accuracy")
    assert "batch 32" in quantization.verdict(_variant(0.0, 0.5, 12.0), baseline)


class _EagerSession:
    """Stands in for an ONNX Runtime session: the module itself, run eagerly."""

    def __init__(self, module) -> None:
        self.run_eagerly = engines.torch_reference(module)

    def run(self, _outputs, feeds):
        return self.run_eagerly(feeds)


def test_a_compiled_module_is_checked_against_eager_timed_and_its_compile_reported(tmp_path):
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 4), dtype=np.float32)}
    row = engines._batch("tiny", 2, feeds, _EagerSession(module), engines.torch_reference(module),
                         pytorch.compiled_runner(module), Context.create(tmp_path, smoke=True, threads=1))
    assert row["compiled_agreement"]["agree"] and row["compile_s"] > 0
    assert {"pytorch_compiled", "compiled_over_ort"} <= set(row) and row["pytorch_compiled"]["rows_per_s"] > 0
    cells = engines._compiled_cells(row)
    assert cells == [row["pytorch_compiled"]["median_ms"], row["compiled_over_ort"], row["compile_s"]]
    disagreeing = {**row, "compiled_agreement": {"agree": False, "max_abs_diff": 0.5}}
    del disagreeing["pytorch_compiled"]
    assert engines._compiled_cells(disagreeing)[0] == "disagrees by 0.5"
