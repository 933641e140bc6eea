"""The first run's parts that need no server: the plan the trainer keeps and the server reads, the
precision chosen by capability, and estimates scaled by the probe."""

from __future__ import annotations

import json
import os

import pytest

from serving.repository import training_plan
from training import estimates, precision
from training.progress import Progress


def _plan(tmp_path):
    """A plan with one model done, one training and one queued, read back as the server reads it."""
    progress = Progress(tmp_path / "plan.json", "quick", {"house-price-gbm": 15.0, "mnist-cnn": 40.0, "vae": 60.0})
    progress.finish("house-price-gbm", 14.0)
    progress.start("mnist-cnn")
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["models"][1]["started_at"] = STARTED
    return plan


STARTED = 1_000_000.0  # a fixed clock: no real time passes in these tests


def _clock(into_training: float) -> float:
    return STARTED + into_training


def test_the_plan_says_what_each_model_still_needs(tmp_path):
    """Its own estimate left for the one training, plus that for every one queued before a model."""
    plan = _plan(tmp_path)
    assert plan["pid"] == os.getpid() and [entry["state"] for entry in plan["models"]] == ["done", "training", "queued"]
    waiting = training_plan.pending(plan, loaded={"house-price-gbm"}, now=_clock(10.0))
    assert waiting == {"mnist-cnn": training_plan.Pending("mnist-cnn", "training", 30.0, 0.25),
                       "vae": training_plan.Pending("vae", "queued", 90.0, 0.0)}
    assert "'vae' is queued" in waiting["vae"].message() and "about 2 min left" in waiting["vae"].message()


def test_a_model_past_its_estimate_still_needs_a_few_seconds_and_a_trained_one_is_loading(tmp_path):
    plan = _plan(tmp_path)
    waiting = training_plan.pending(plan, loaded=set(), now=_clock(100.0))
    assert waiting["mnist-cnn"] == training_plan.Pending("mnist-cnn", "training", training_plan.MIN_SECONDS_LEFT, 0.99)
    assert waiting["house-price-gbm"].state == "loading"


def test_a_failed_or_stopped_trainer_is_said_so(tmp_path):
    progress = Progress(tmp_path / "plan.json", "quick", {"mnist-cnn": 40.0, "vae": 60.0})
    progress.fail("mnist-cnn", "no MNIST under data/")
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert training_plan.pending(plan, set())["mnist-cnn"].error == "no MNIST under data/"
    assert training_plan.pending(plan, set())["vae"].state == "queued"
    plan["pid"] = 2**22 + 1  # above Linux's largest pid: no such process
    assert training_plan.pending(plan, set())["vae"].state == "failed"


def test_no_plan_means_nothing_pending(tmp_path):
    assert training_plan.read(tmp_path / "absent.json") is None and training_plan.pending(None, set()) == {}
    assert training_plan.planned(None) == []


@pytest.mark.parametrize(("units", "override", "bf16"), [
    (False, "auto", False), (True, "auto", True), (False, "on", True), (True, "off", False)])
def test_bf16_only_where_the_cpu_has_its_units(monkeypatch, units, override, bf16):
    monkeypatch.setenv(precision.OVERRIDE, override)
    chosen = precision.choose(True, units=units)
    assert chosen.bf16 is bf16 and chosen.as_card()["autocast"] == ("bfloat16" if bf16 else "none")
    assert chosen.bf16_units is units


def test_the_capability_check_decides_when_not_told(monkeypatch):
    """Forced off, as on an AVX2 CPU without bf16 units, the diffusion profile trains in fp32."""
    monkeypatch.delenv(precision.OVERRIDE, raising=False)
    monkeypatch.setattr(precision, "bf16_units", lambda: False)
    assert precision.choose(True).bf16 is False and "no bf16 units" in precision.choose(True).reason
    assert precision.choose(False, units=True).bf16 is False  # an fp32 profile stays fp32


def test_estimates_scale_by_the_probe_of_their_kind():
    """A CPU that runs the U-Net twice as slowly (no bf16 units) doubles the diffusion model's
    training, not its evaluation (ONNX Runtime) nor the other models."""
    twice_as_slow_unet = {**estimates.REFERENCE_PROBE, "unet": 2 * estimates.REFERENCE_PROBE["unet"]}
    here = estimates.scaled("quick", twice_as_slow_unet)
    reference = estimates.REFERENCE_SECONDS["quick"]
    diffusion = reference["diffusion"]
    assert here["diffusion"] == pytest.approx(2 * diffusion["unet"] + diffusion["cnn"])
    assert here["mnist-cnn"] == pytest.approx(reference["mnist-cnn"])
    assert set(estimates.probe()) == set(estimates.REFERENCE_PROBE)


def test_the_first_digit_classifier_of_a_run_also_prepares_the_test_digits():
    run = estimates.in_run_order({"passengers": 6.0, "mnist-tree": 4.0, "mnist-knn": 10.0}, estimates.REFERENCE_PROBE)
    assert run == {"passengers": 6.0, "mnist-tree": 4.0 + estimates.TEST_DIGITS_SECONDS, "mnist-knn": 10.0}
    assert list(run) == ["passengers", "mnist-tree", "mnist-knn"]
