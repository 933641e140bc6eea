"""The NumPy side of generation: FID on known Gaussians, the DDIM scheduler against its formulas,
seeds, guidance and image conversion."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from serving.errors import FieldError
from serving.inference import ddim, generation, images
from serving.repository import card as contract
from serving.settings import Settings
from training.data import mnist_arrays
from training.generative_eval import (FeatureModelMissing, classifier_score, digit_counts, feature_session,
                                       frechet_distance, gaussian_statistics)

BETAS = ddim.linear_betas(1000, 1e-4, 0.02)


def _rotation(dim: int, seed: int) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))[0]


def test_fid_of_two_gaussians_has_the_closed_form():
    # Covariances sharing eigenvectors: FID = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    q, a, b = _rotation(6, 0), np.array([1.0, 2, 3, 4, 5, 6]), np.array([2.0, 2, 1, 9, 0.5, 6])
    mu1, mu2 = np.zeros(6), np.arange(6.0)
    expected = float(mu2 @ mu2 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    fid = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert fid == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, q @ np.diag(a) @ q.T, mu1, q @ np.diag(a) @ q.T) == pytest.approx(0.0, abs=1e-9)


def test_fid_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    first = rng.standard_normal((200_000, 3))
    second = rng.standard_normal((200_000, 3)) * [1.0, 2.0, 3.0] + [1.0, 0.0, 0.0]
    expected = 1.0 + (1 - 1) ** 2 + (1 - 2) ** 2 + (1 - 3) ** 2
    fid = frechet_distance(*gaussian_statistics(first), *gaussian_statistics(second))
    assert fid == pytest.approx(expected, rel=0.02)


def test_classifier_score_tells_varied_confident_digits_from_confident_noise():
    confident = np.full((1000, 10), 1e-6)
    confident[np.arange(1000), np.arange(1000) % 10] = 1.0 - 9e-6
    assert classifier_score(confident) == pytest.approx(10.0, rel=1e-3)  # every digit, each read for sure
    collapsed = np.full((1000, 10), 1e-6)
    collapsed[:, 3] = 1.0 - 9e-6
    assert classifier_score(collapsed) == pytest.approx(1.0, rel=1e-3)  # each read for sure, all as one digit
    assert classifier_score(np.full((1000, 10), 0.1)) == pytest.approx(1.0)  # nothing read at all


@pytest.mark.parametrize("images", [100, 10_000, 10_007])
def test_conditional_samples_follow_the_training_sets_digit_frequencies(images):
    _, labels = mnist_arrays(train=True)
    share = np.bincount(labels) / len(labels) * images
    counts = digit_counts(images)
    assert counts.sum() == images
    assert np.all(np.abs(counts - share) < 1.0)
    assert counts.argmax() == 1 and counts.argmin() == 5  # MNIST's most and least frequent digits


def test_missing_feature_model_is_a_clear_error(tmp_path):
    with pytest.raises(FeatureModelMissing, match="mnist-cnn.*python -m training mnist-cnn"):
        feature_session(tmp_path)


@pytest.mark.parametrize("steps, first, last", [(1, 999, 999), (50, 999, 19), (1000, 999, 0), (3, 999, 332)])
def test_trailing_timesteps_start_from_pure_noise(steps, first, last):
    scheduler = ddim.DDIMScheduler(BETAS)
    scheduler.set_timesteps(steps)
    t = scheduler.timesteps
    assert (len(t), t[0], t[-1]) == (steps, first, last)
    assert (np.diff(t) < 0).all()  # distinct and descending


@pytest.mark.parametrize("steps", [0, 1001])
def test_step_count_is_bounded(steps):
    with pytest.raises(ValueError, match="steps"):
        ddim.DDIMScheduler(BETAS).set_timesteps(steps)


def test_ddim_step_matches_the_formulas():
    """Song et al. (2021), eq. 12 with sigma = 0, written out directly."""
    alpha_bar = np.cumprod(1.0 - BETAS)  # prod_{s <= t} (1 - beta_s)
    scheduler = ddim.DDIMScheduler(BETAS)
    scheduler.set_timesteps(10)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    for index, t in enumerate(scheduler.timesteps):
        eps = (0.3 * rng.standard_normal(x.shape)).astype(np.float32)
        previous = scheduler.timesteps[index + 1] if index + 1 < len(scheduler.timesteps) else None
        a, a_prev = alpha_bar[t], (alpha_bar[previous] if previous is not None else 1.0)
        assert scheduler.alphas(int(t)) == pytest.approx((a, a_prev), rel=1e-12)  # the step graphs' inputs
        x0 = np.clip((x - np.sqrt(1 - a) * eps) / np.sqrt(a), -1, 1)
        eps_used = (x - np.sqrt(a) * x0) / np.sqrt(1 - a)
        expected = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps_used
        x_next = scheduler.step(eps, int(t), x)
        np.testing.assert_allclose(x_next, expected, rtol=1e-5, atol=1e-5)
        x = x_next


@pytest.mark.parametrize("steps", [1, 7, 50])
def test_an_exact_noise_predictor_recovers_the_image(steps):
    alpha_bar = np.cumprod(1.0 - BETAS)
    target = np.random.default_rng(3).uniform(-1, 1, (2, 1, 28, 28)).astype(np.float32)

    def oracle(feeds):  # the true noise of x_t for this target: what a perfect network predicts
        a = alpha_bar[feeds["t"]][:, None, None, None]
        return ((feeds["x"] - np.sqrt(a) * np.concatenate([target] * (len(feeds["x"]) // 2))) / np.sqrt(1 - a)
                ).astype(np.float32)

    images = ddim.ddim_sample(oracle, ddim.DDIMScheduler(BETAS), 0, 2, steps, None, 1.0)
    np.testing.assert_allclose(images, target, atol=1e-4)


def test_guidance_mixes_conditional_and_unconditional_in_one_batch():
    calls = []

    def run(feeds):
        calls.append(feeds)
        unconditional = feeds["label"] == ddim.NULL_LABEL
        return np.where(unconditional, 1.0, 3.0)[:, None, None, None] * np.ones_like(feeds["x"])

    x = np.zeros((2, 1, 28, 28), np.float32)
    eps = ddim.guided_eps(run, x, 5, digit=7, guidance=2.5)
    np.testing.assert_allclose(eps, 1.0 + 2.5 * (3.0 - 1.0))
    assert len(calls) == 1 and calls[0]["x"].shape[0] == 4 and calls[0]["t"].tolist() == [5] * 4
    assert calls[0]["label"].tolist() == [7, 7, ddim.NULL_LABEL, ddim.NULL_LABEL]
    np.testing.assert_allclose(ddim.guided_eps(run, x, 5, digit=None, guidance=2.5), 1.0)


def test_seeds_and_images():
    np.testing.assert_array_equal(generation.latents(42, 3, 8), generation.latents(42, 3, 8))
    assert not np.array_equal(generation.latents(42, 3, 8), generation.latents(43, 3, 8))
    assert 0 <= generation.resolve_seed(None) <= generation.MAX_SEED and generation.resolve_seed(7) == 7
    pixels = generation.to_uint8(np.array([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 1, 4), (-1.0, 1.0))
    assert pixels.tolist() == [[[0, 128, 255, 255]]]
    tiles = images.grid(np.full((5, 28, 28), 255, np.uint8), columns=3)
    assert tiles.shape == (2 * 30 + 2, 3 * 30 + 2) and tiles.sum() == 5 * 28 * 28 * 255
    path = generation.interpolate(np.zeros(2, np.float32), np.ones(2, np.float32), 5)
    np.testing.assert_allclose(path[:, 0], [0, 0.25, 0.5, 0.75, 1.0])
    assert images.png(tiles) == images.png(tiles.copy())


def _card(**sampling_changes) -> contract.Card:
    sampling = {"kind": "ddim", "schedule": {"kind": "linear", "train_steps": 1000, "beta_start": 1e-4,
                                             "beta_end": 0.02},
                "default_steps": 50, "default_guidance": 1.25, "null_label": 10, "output_range": [-1.0, 1.0],
                **sampling_changes}
    tensor = {"name": "x", "dtype": "float32", "shape": [-1, 1, 28, 28]}
    graph = {"file": "model.onnx", "sha256": "0" * 64, "opset": 17, "inputs": [tensor], "outputs": [tensor],
             "parity": {}}
    return contract.validate({"schema_version": 1, "name": "diffusion", "version": "v", "task": "image-generation",
                              "profile": "quick", "graphs": {"model": graph}, "metrics": {}, "conditional": True,
                              "sampling": sampling}, "test card")


def test_a_sampling_request_takes_the_cards_defaults_and_bounds():
    request = generation.SamplingRequest.resolve(_card(), n=4, seed=7)
    assert request.arguments() == {"model": "diffusion", "n": 4, "seed": 7, "digit": None, "steps": 50,
                                   "guidance": 1.25, "eta": 0.0}
    explicit = generation.SamplingRequest.resolve(_card(), n=1, seed=None, digit=3, steps=1000, guidance=0.0)
    assert (explicit.digit, explicit.steps, explicit.guidance) == (3, 1000, 0.0)
    assert 0 <= explicit.seed <= generation.MAX_SEED  # drawn, so the answer can name it
    with pytest.raises(FieldError, match="at most 1000") as caught:
        generation.SamplingRequest.resolve(_card(), n=1, steps=1001)
    assert caught.value.field == "steps"


def test_the_operators_caps_bound_requests_and_defaults():
    capped = Settings(max_images=4, max_steps=8)
    assert generation.SamplingRequest.resolve(_card(), n=4, seed=7, limits=capped).steps == 8  # default 50, capped
    for field, asked in (("n", {"n": 5}), ("steps", {"n": 1, "steps": 9})):
        with pytest.raises(FieldError, match="at most") as caught:
            generation.SamplingRequest.resolve(_card(), limits=capped, **asked)
        assert caught.value.field == field


def test_a_digit_for_an_unconditional_model_is_refused():
    card = _card().model_copy(update={"conditional": False})
    with pytest.raises(FieldError, match="unconditional") as caught:
        generation.SamplingRequest.resolve(card, n=1, digit=3)
    assert caught.value.field == "digit"


def _label_adding_step(path) -> ort.InferenceSession:
    """A step graph whose x_prev is x + label / 100: the label it was fed shows in the image."""

    def scalar_per_row(name: str, kind: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, kind, ["n"])

    image = ["n", 1, 28, 28]
    graph = helper.make_graph(
        [helper.make_node("Cast", ["label"], ["as_float"], to=TensorProto.FLOAT),
         helper.make_node("Div", ["as_float", "hundred"], ["shift"]),
         helper.make_node("Unsqueeze", ["shift", "axes"], ["shift_image"]),
         helper.make_node("Add", ["x", "shift_image"], ["x_prev"])],
        "label_adding_step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, image), scalar_per_row("t", TensorProto.INT64),
         scalar_per_row("alpha", TensorProto.FLOAT), scalar_per_row("alpha_prev", TensorProto.FLOAT),
         scalar_per_row("label", TensorProto.INT64)],
        [helper.make_tensor_value_info("x_prev", TensorProto.FLOAT, image)],
        [helper.make_tensor("hundred", TensorProto.FLOAT, [], [100.0]),
         helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("null_label", [10, 3])
def test_unconditional_sampling_feeds_the_cards_null_label(tmp_path, null_label):
    sampling = _card(null_label=null_label).sampling
    step = _label_adding_step(tmp_path / "step.onnx")
    drawn = generation.generate(sampling, {ddim.STEP_GRAPH: step}, seed=4, n=2, steps=2)
    expected = generation.to_uint8(ddim.initial_noise(4, 2) + 2 * null_label / 100, (-1.0, 1.0))
    np.testing.assert_allclose(drawn, expected, atol=1)


def test_with_eta_one_at_every_training_step_each_step_adds_the_ddpm_posterior_variance():
    """DDIM's sigma at eta = 1 is DDPM's posterior standard deviation: beta-tilde_t =
    (1 - abar_{t-1}) / (1 - abar_t) * beta_t, at every one of the training steps."""
    scheduler = ddim.DDIMScheduler(BETAS)
    scheduler.set_timesteps(len(BETAS))
    alpha_bar = np.cumprod(1.0 - BETAS)
    for t in scheduler.timesteps.tolist()[:-1]:  # the last step (t = 0) adds none
        alpha, alpha_prev = scheduler.alphas(t)
        posterior = (1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * BETAS[t]
        assert ddim.sigma(alpha, alpha_prev, 1.0) ** 2 == pytest.approx(posterior, rel=1e-9), t
    assert ddim.sigma(*scheduler.alphas(0), 1.0) == 0.0 and ddim.sigma(*scheduler.alphas(500), 0.0) == 0.0
    # The step adds that variance: fixed x0 and noise direction, fresh noise drawn many times.
    x = np.random.default_rng(1).standard_normal((1, 1, 28, 28)).astype(np.float32)
    eps = np.zeros_like(x)
    t = 500
    draws = np.stack([scheduler.step(eps, t, x, 1.0, np.random.default_rng(k).standard_normal(x.shape, np.float32))
                      for k in range(4000)])
    expected = (1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * BETAS[t]
    assert draws.var(axis=0).mean() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_eta_is_seeded_and_eta_zero_is_the_deterministic_sampler(eta):
    def run(feeds):  # a fixed noise predictor
        return (0.3 * feeds["x"]).astype(np.float32)

    first = ddim.ddim_sample(run, ddim.DDIMScheduler(BETAS), 4, 2, 20, None, 1.0, eta=eta)
    again = ddim.ddim_sample(run, ddim.DDIMScheduler(BETAS), 4, 2, 20, None, 1.0, eta=eta)
    assert np.array_equal(first, again)  # the same seed, the same images
    deterministic = ddim.ddim_sample(run, ddim.DDIMScheduler(BETAS), 4, 2, 20, None, 1.0)
    assert np.array_equal(first, deterministic) == (eta == 0.0)
