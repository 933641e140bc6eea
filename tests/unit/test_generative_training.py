"""The generative families: cards with parity of every graph, FID next to its floor, samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from serving.inference import ddim, generation
from serving.repository.card import sampling_of
from serving.repository.layout import newest
from training import precision

from ..conftest import GENERATED_FOR_METRICS, records_training_cost


def _card(models: Path, name: str) -> dict:
    return json.loads((newest(models / name) / "card.json").read_text())


def _check_quality(card: dict) -> None:
    m = card["metrics"]
    assert m["fid"] > m["fid_floor_validation_vs_test"] > 0
    low, high = m["fid_interval_95"]
    assert low <= m["fid"] <= high and len(m["fid_draws"]) == 5
    assert m["kid"] > m["kid_floor_validation_vs_test"]
    assert m["fid_images_a_side"] == min(5_000, m["generated_images"]) and m["feature_model"]["name"] == "mnist-cnn"
    if card["sampling"]["kind"] == "ddim":  # scored with its null label too, like the unconditional generators
        assert m["unconditional"]["fid"] > m["fid_floor_validation_vs_test"]
        assert sum(m["unconditional"]["classes_read"].values()) == m["fid_images_a_side"]
    assert Path(m["samples_png"]).name == "samples.png" and Path(m["samples_png"]).stat().st_size > 0
    for graph in card["graphs"].values():
        assert graph["parity"]["max_abs_diff"] <= 1e-4 and graph["parity"]["rows"] >= 256
    assert records_training_cost(card) and "conditional" in card


def test_vae_card(trained_models):
    card = _card(trained_models, "vae")
    _check_quality(card)
    assert card["conditional"] is False and card["metrics"]["generated_images"] == GENERATED_FOR_METRICS
    assert card["sampling"] == {"kind": "latent", "input": "z", "latent_dim": 16, "output_range": [0.0, 1.0],
                                "prior": {"graph": "prior", "input": "noise", "noise_dim": 17}}
    assert card["hyperparameters"]["latent_dim"] == 16
    assert 50 < card["metrics"]["test_negative_elbo_nats"] < 550  # uniform pixels would cost 543 nats
    assert [o["name"] for o in card["graphs"]["encoder"]["outputs"]] == ["mean", "log_var"]
    prior = card["prior"]
    fids = prior["validation_fid_by_prior"]
    assert fids[f"mixture_{prior['components']}"] == min(v for k, v in fids.items() if k.startswith("mixture_"))
    bounds = card["metrics"]["importance_weighted"]
    assert bounds["importance_samples"] == 100 and bounds["images"] == 200
    # More samples of q tighten the bound on the same images (in expectation; 200 images): k = 100 below k = 1.
    assert bounds["test_negative_iw_bound_nats_standard_normal_prior"] < bounds["test_negative_elbo_nats_same_images"]


def test_vae_samples_are_the_seeded_prior_points_decoded(trained_models):
    card = _card(trained_models, "vae")
    decoder, prior = (ort.InferenceSession(str(newest(trained_models / "vae") / f"{graph}.onnx"))
                      for graph in ("model", "prior"))
    images = generation.generate(sampling_of(card["sampling"]), {"model": decoder, "prior": prior}, seed=5, n=3)
    z = prior.run(None, {"noise": np.random.default_rng(5).standard_normal((3, 17), dtype=np.float32)})[0]
    expected = decoder.run(None, {"z": z})[0]
    np.testing.assert_array_equal(images, np.round(np.clip(expected[:, 0], 0, 1) * 255).astype(np.uint8))


def test_mixture_prior_draws_each_component_by_its_weight():
    from sklearn.mixture import GaussianMixture

    from training.vae import MixturePrior

    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(-10, 1, (300, 2)), rng.normal(10, 0.5, (700, 2))])
    mixture = GaussianMixture(2, covariance_type="full", random_state=0).fit(codes)
    points = MixturePrior(mixture)(torch.from_numpy(rng.standard_normal((20_000, 3), dtype=np.float32))).numpy()
    near = np.abs(points[:, None] - mixture.means_[None]).max(axis=2).argmin(axis=1)
    np.testing.assert_allclose(np.bincount(near) / len(points), mixture.weights_, atol=0.02)
    for component in range(2):
        np.testing.assert_allclose(np.cov(points[near == component], rowvar=False), mixture.covariances_[component],
                                   atol=0.1)


def test_gan_card(trained_models):
    card = _card(trained_models, "gan")
    _check_quality(card)
    assert card["conditional"] is False and card["sampling"]["output_range"] == [-1.0, 1.0]
    h = card["hyperparameters"]
    assert (h["objective"], h["critic_steps_per_generator_step"]) == ("non-saturating", 1)  # the quick profile's
    assert card["validation"]["best_fid_vs_validation"] > 0


@pytest.mark.parametrize("name, graphs", [("vae-conditional", {"model", "encoder", "prior"}),
                                          ("gan-conditional", {"model"})])
def test_conditional_twin_cards(trained_models, name, graphs):
    """The class-conditional VAE and GAN: scored on digits asked for in the data's proportions,
    and their graphs take the digit beside the latent."""
    card = _card(trained_models, name)
    _check_quality(card)
    m = card["metrics"]
    assert card["conditional"] is True and card["sampling"]["label_input"] == "digit" and set(card["graphs"]) == graphs
    assert "unconditional" not in m and card["hyperparameters"].get("self_conditioning_clusters", 0) == 0
    counts = [m["samples_per_digit"][str(d)] for d in range(10)]
    assert sum(counts) == m["generated_images"] and min(counts) > 0
    per_digit = [m["conditional_accuracy_per_digit"][str(d)] for d in range(10)]
    assert m["conditional_accuracy"] == pytest.approx(np.average(per_digit, weights=counts))
    inputs = {i["name"]: i["dtype"] for i in card["graphs"]["model"]["inputs"]}
    assert inputs == {"z": "float32", "digit": "int64"}


@pytest.mark.parametrize("name", ["vae-conditional", "gan-conditional"])
def test_a_conditional_twin_draws_the_digit_it_is_asked_for(trained_models, name):
    """Same seed, another digit: other pixels; no digit: digits drawn from the seed, still replayable."""
    card = _card(trained_models, name)
    sessions = {key: ort.InferenceSession(str(newest(trained_models / name) / spec["file"]))
                for key, spec in card["graphs"].items()}
    sampling = sampling_of(card["sampling"])
    three = generation.generate(sampling, sessions, seed=4, n=6, digit=3)
    assert not np.array_equal(three, generation.generate(sampling, sessions, seed=4, n=6, digit=8))
    np.testing.assert_array_equal(three, generation.generate(sampling, sessions, seed=4, n=6, digit=3))
    np.testing.assert_array_equal(generation.generate(sampling, sessions, seed=4, n=6),
                                  generation.generate(sampling, sessions, seed=4, n=6))
    with pytest.raises(ValueError, match="digit"):
        generation.decode(sampling, lambda feeds: sessions["model"].run(None, feeds)[0], np.zeros((1, 16)))


def test_a_self_conditioned_gan_is_unconditional_to_its_clients(trained_models, tmp_path, monkeypatch):
    """The full GAN's self-conditioning on a tiny run: clusters of the images (no digit labels) in
    the graph and the card, drawn by their weights from the seed; a requested digit is refused."""
    import dataclasses

    from serving.repository.card import validate
    from serving.errors import FieldError
    from training import gan
    from training.template import train

    monkeypatch.setitem(gan.PROFILES, "quick", dataclasses.replace(gan.PROFILES["quick"], clusters=4))
    monkeypatch.setenv("ZOOSERVE_REPORTS_DIR", str(tmp_path / "reports"))  # not the fixture gan's samples.png
    shutil.copytree(trained_models / "mnist-cnn", tmp_path / "mnist-cnn")
    train(gan.GanRecipe, "quick", limit=500, out_root=tmp_path)
    card = _card(tmp_path, "gan")
    sampling = sampling_of(card["sampling"])
    assert card["conditional"] is False and card["hyperparameters"]["self_conditioning_clusters"] == 4
    assert sampling.label_input == "cluster" and len(sampling.label_weights) == 4
    assert sum(sampling.label_weights) == pytest.approx(1.0) and min(sampling.label_weights) > 0
    assert {i["name"]: i["dtype"] for i in card["graphs"]["model"]["inputs"]} == {"z": "float32", "cluster": "int64"}
    assert "unconditional" not in card["metrics"] and "conditional_accuracy" not in card["metrics"]
    sessions = {"model": ort.InferenceSession(str(newest(tmp_path / "gan") / "model.onnx"))}
    np.testing.assert_array_equal(generation.generate(sampling, sessions, seed=3, n=5),
                                  generation.generate(sampling, sessions, seed=3, n=5))
    assert set(generation.sample_digits(sampling, seed=3, n=400, digit=None).tolist()) == set(range(4))
    with pytest.raises(ValueError, match="no digit"):  # a digit would be fed to the graph as a cluster
        generation.generate(sampling, sessions, seed=3, n=5, digit=2)
    with pytest.raises(FieldError, match="digit"):
        generation.SamplingRequest.resolve(validate(card, "gan"), n=1, digit=3)


def test_wgan_gp_card(trained_models):
    card = _card(trained_models, "gan-wgan-gp")
    _check_quality(card)
    assert card["hyperparameters"]["objective"] == "wgan-gp" and card["hyperparameters"]["critic_steps_per_generator_step"] == 5
    assert card["conditional"] is False and {i["name"] for i in card["graphs"]["model"]["inputs"]} == {"z"}
    history = card["validation"]["history"]
    # Minus the critic's Wasserstein estimate on validation images: one value an epoch, beside the FID.
    assert all(np.isfinite(epoch["val_loss"]) and epoch["val_score"] > 0 for epoch in history)


def _critic_slope(models: Path, penalty: float) -> float:
    """The critic's mean gradient norm on real-fake interpolates after a tiny WGAN training (the
    recipe's own steps through the shared loop), with the penalty's weight ``penalty``."""
    import dataclasses

    from training import gan
    from training.loop import fit, seed_everything
    from training.template import Run

    recipe = gan.WganGpRecipe(Run("quick", 0, 3200, models, None))
    recipe.config = dataclasses.replace(recipe.config, gradient_penalty=penalty)
    seed_everything(0)
    recipe.load()
    model = recipe.network()
    how = recipe.learning(model)
    fit(model, recipe.batches, recipe.loss, lambda _model: 0.0, how.optimizer, epochs=1, leave=False)
    torch.manual_seed(1)
    real = recipe.digits.x_val[:512]
    fake = model.generator.eval()(torch.randn(len(real), recipe.config.latent_dim))
    return float(model.interpolate_gradient_norms(real, fake.detach(), None).mean())


def test_the_gradient_penalty_holds_the_critic_near_slope_one(trained_models):
    """WGAN-GP's point (the notes' 5.3): with the penalty the critic's gradient norm on
    interpolates ends closer to 1 than without it, same seed, data and steps."""
    with_penalty, without = _critic_slope(trained_models, 10.0), _critic_slope(trained_models, 0.0)
    assert abs(with_penalty - 1) < abs(without - 1), (with_penalty, without)


def test_diffusion_card(trained_models):
    card = _card(trained_models, "diffusion")
    _check_quality(card)
    m = card["metrics"]
    assert card["conditional"] is True and m["generated_images"] == GENERATED_FOR_METRICS and m["sampling"]["steps"] == 50
    assert m["sampling"]["guidance"] == card["sampling"]["default_guidance"] == 2.0  # the quick profile's
    assert set(m["conditional_accuracy_per_digit"]) == {str(d) for d in range(10)}
    counts = [m["samples_per_digit"][str(d)] for d in range(10)]
    assert sum(counts) == sum(m["classes_read"].values()) == GENERATED_FOR_METRICS
    assert 1.0 <= m["classifier_score"] <= 10.0
    per_digit = [m["conditional_accuracy_per_digit"][str(d)] for d in range(10)]
    assert m["conditional_accuracy"] == pytest.approx(np.average(per_digit, weights=counts))
    assert [i["name"] for i in card["graphs"]["model"]["inputs"]] == ["x", "t", "label"]
    assert [i["name"] for i in card["graphs"]["guided_step"]["inputs"]] == ["x", "t", "label", "alpha", "alpha_prev",
                                                                          "guidance"]
    assert [o["name"] for o in card["graphs"]["step"]["outputs"]] == ["x_prev"]
    assert card["graphs"]["model"]["inputs"][1]["dtype"] == "int64"
    assert card["sampling"]["schedule"]["train_steps"] == 1000 and card["sampling"]["default_steps"] == 50
    # Trained in bf16 only where this CPU has the units: what the capability check (or the override) chose.
    recorded = card["hyperparameters"]["precision"]
    assert recorded == precision.choose(True).as_card() and card["hyperparameters"]["autocast"] == recorded["autocast"]
    assert recorded["bf16_units"] == precision.bf16_units()


def test_diffusion_graph_batches_guided_pairs(trained_models):
    session = ort.InferenceSession(str(newest(trained_models / "diffusion") / "model.onnx"))
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28), dtype=np.float32)
    single = [session.run(None, {"x": x[i:i + 1], "t": np.array([500]), "label": np.array([4])})[0]
              for i in range(3)]
    batch = session.run(None, {"x": x, "t": np.full(3, 500), "label": np.full(3, 4)})[0]
    np.testing.assert_allclose(batch, np.concatenate(single), atol=1e-5)  # batch rows are independent


@pytest.mark.parametrize("steps, digit, eta", [(1, None, 0.0), (2, None, 0.0), (9, None, 0.0), (2, 4, 0.0),
                                              (9, 4, 0.0), (9, None, 1.0), (9, 4, 0.5)])
def test_the_step_graph_loop_on_device_is_the_numpy_scheduler(trained_models, steps, digit, eta):
    """IO binding, with the image kept in OrtValues, against the NumPy DDIM update around the
    noise predictor: the exported step graphs do the scheduler's maths (odd and even step counts
    end in different buffers), and with eta the host adds the same seeded noise."""
    card = _card(trained_models, "diffusion")
    graphs = {key: ort.InferenceSession(str(newest(trained_models / "diffusion") / spec["file"]))
              for key, spec in card["graphs"].items()}
    scheduler = generation.scheduler_for(sampling_of(card["sampling"]))
    guided = digit is not None
    on_device = ddim.ddim_sample_on_device(graphs["guided_step" if guided else "step"], guided, scheduler,
                                           seed=3, n=5, steps=steps, digit=digit, guidance=3.0, eta=eta)
    on_host = ddim.ddim_sample(lambda feeds: graphs["model"].run(None, feeds)[0], scheduler, 3, 5, steps,
                               digit, 3.0, eta=eta)
    assert np.abs(on_host).max() > 0.5  # real images, not an untouched buffer
    np.testing.assert_allclose(on_device, on_host, atol=1e-4 if eta == 0.0 else 2e-3)



@pytest.fixture
def diffusion_copy(trained_models, tmp_path, monkeypatch) -> Path:
    """The quick diffusion model and its classifier in a scratch models directory (and reports)."""
    models = tmp_path / "models"
    for name in ("mnist-cnn", "diffusion"):
        shutil.copytree(trained_models / name, models / name)
    monkeypatch.setenv("ZOOSERVE_REPORTS_DIR", str(tmp_path / "reports"))
    return models


def test_guidance_sweep_scores_each_weight_against_the_validation_slice(diffusion_copy, tmp_path):
    from training import guidance_sweep

    guidance_sweep.main(["--models-dir", str(diffusion_copy), "sweep", "--guidance", "0", "3", "--images", "20",
                         "--steps", "2"])
    report = json.loads((tmp_path / "reports" / "diffusion" / "guidance-sweep.json").read_text())
    assert [row["guidance"] for row in report["rows"]] == [0.0, 3.0] and report["images"] == 20
    for row in report["rows"]:
        assert row["fid_vs_validation"] > 0 and 0.0 <= row["conditional_accuracy"] <= 1.0
    assert report["rows"][0]["fid_vs_validation"] != report["rows"][1]["fid_vs_validation"]


def test_the_eta_sweep_scores_steps_and_eta_against_the_validation_slice(diffusion_copy, tmp_path):
    from training import eta_sweep

    eta_sweep.main(["--models-dir", str(diffusion_copy), "--steps", "2", "4", "--eta", "0", "1", "--images", "20"])
    report = json.loads((tmp_path / "reports" / "diffusion" / "eta-sweep.json").read_text())
    assert [(row["eta"], row["steps"]) for row in report["rows"]] == [(0.0, 2), (0.0, 4), (1.0, 2), (1.0, 4)]
    assert all(row["fid_vs_validation"] > 0 for row in report["rows"]) and report["images"] == 20
    assert len({row["fid_vs_validation"] for row in report["rows"]}) == 4  # eta changes the samples
    assert (tmp_path / "reports" / "diffusion" / "eta-sweep.png").stat().st_size > 0


def test_choose_makes_the_best_eligible_weight_the_cards_default(diffusion_copy, tmp_path):
    from training import guidance_sweep

    report = tmp_path / "reports" / "diffusion" / "guidance-sweep.json"
    report.parent.mkdir(parents=True)
    rows = [{"guidance": 0.5, "fid_vs_validation": 2.0, "conditional_accuracy": 0.99},
            {"guidance": 3.0, "fid_vs_validation": 1.0, "conditional_accuracy": 0.96},
            {"guidance": 1.0, "fid_vs_validation": 0.5, "conditional_accuracy": 0.90}]  # best FID, too inaccurate
    report.write_text(json.dumps({"images": 20, "steps": None, "seed": 1, "rows": rows}))
    before = _card(diffusion_copy, "diffusion")
    guidance_sweep.main(["--models-dir", str(diffusion_copy), "choose"])
    card = _card(diffusion_copy, "diffusion")
    assert card["sampling"]["default_guidance"] == 3.0 and card["guidance_choice"]["rows"] == rows
    assert card["metrics"]["sampling"] == {**before["metrics"]["sampling"], "guidance": 3.0}
    assert card["metrics"]["generated_images"] == before["metrics"]["generated_images"]
    assert card["metrics"]["fid"] != before["metrics"]["fid"] and card["version"] == before["version"]

    report.write_text(json.dumps({"images": 20, "steps": None, "seed": 1, "rows": rows[2:]}))
    with pytest.raises(SystemExit, match="no swept weight"):
        guidance_sweep.main(["--models-dir", str(diffusion_copy), "choose"])
