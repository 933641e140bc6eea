"""Sampling from the generative models' graphs, as a card's ``sampling`` says: seeds, latents.

Plain NumPy around ONNX Runtime calls, so the served samples are the very samples the card's
FID was measured on: training generates its evaluation images through this module, and serving
runs it the same way. Every draw comes from ``np.random.default_rng(seed)`` (PCG64 is the same
on every platform), and the labels of a latent model that takes them from
``default_rng([seed, 1])``, so one seed gives the same bytes anywhere. The diffusion sampler itself is
``serving.inference.ddim``; PNG and grid encoding sit with the image decoding in ``serving.inference.images``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import onnxruntime as ort

from serving.errors import FieldError
from serving.heap import release_freed_memory
from serving.inference.ddim import (GUIDED_STEP_GRAPH, STEP_GRAPH, DDIMScheduler, Progress, Run, Stop,
                                    ddim_sample_on_device, linear_betas, never)
from serving.inference.images import MNIST_MEAN, MNIST_STD
from serving.repository.card import MAX_SEED, Card, DDIMSampling, LatentSampling
from serving.settings import Settings


def resolve_seed(seed: int | None) -> int:
    """The request's seed, or a fresh one the answer will name so the client can replay it."""
    return int(np.random.default_rng().integers(0, MAX_SEED, endpoint=True)) if seed is None else seed


@dataclass(frozen=True)
class SamplingRequest:
    """One generation request resolved against its model's card, in one place: the digit only
    for a conditional model, DDIM steps within what the model was trained with, the card's
    defaults for what the client left out, and a seed the answer names (drawn when none was sent).
    The API process resolves it; the generation worker runs exactly these values."""

    model: str
    n: int
    seed: int
    digit: int | None = None
    steps: int | None = None  # DDIM models only
    guidance: float | None = None  # DDIM models only
    eta: float | None = None  # DDIM models only: 0 deterministic (DDIM), 1 DDPM's ancestral sampling

    @classmethod
    def resolve(cls, card: Card, n: int, seed: int | None = None, digit: int | None = None,
                steps: int | None = None, guidance: float | None = None, eta: float | None = None,
                limits: Settings = Settings()) -> SamplingRequest:
        if n > limits.max_images:
            raise FieldError("n", f"must be at most {limits.max_images} (ZOOSERVE_MAX_IMAGES)", "less_than_equal")
        if digit is not None and not card.conditional:
            raise FieldError("digit", f"{card.name} is unconditional: leave digit out (see its card)")
        sampling = card.sampling
        if isinstance(sampling, DDIMSampling):
            most = most_steps(sampling, limits)
            # The operator's cap holds for the card's default too.
            steps, guidance = sampling.resolved(min(sampling.default_steps, most) if steps is None else steps, guidance)
            if steps > most:
                raise FieldError("steps", f"must be at most {most} (the steps this model was trained with, "
                                          "or ZOOSERVE_MAX_STEPS if lower)", "less_than_equal")
            eta = 0.0 if eta is None else eta
        return cls(card.name, n, resolve_seed(seed), digit, steps, guidance, eta)

    def arguments(self) -> dict[str, Any]:
        """The request as the generation worker's ``sample`` takes it."""
        return asdict(self)


def most_steps(sampling: DDIMSampling, limits: Settings) -> int:
    """The DDIM steps a request may ask for: the model's training steps, or the operator's cap."""
    trained = sampling.schedule.train_steps
    return min(trained, limits.max_steps) if limits.max_steps else trained


def latents(seed: int, n: int, dim: int) -> np.ndarray:
    """``n`` standard-normal latent vectors, the same for the same seed."""
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)


def latent_points(sampling: LatentSampling, sessions: Mapping[str, ort.InferenceSession], seed: int,
                  n: int) -> np.ndarray:
    """``n`` points of a decoder's latent space for ``seed``: the standard-normal draws themselves,
    or, when the card names a prior graph, those draws through it."""
    prior = sampling.prior
    if prior is None:
        return latents(seed, n, sampling.latent_dim)
    return sessions[prior.graph].run(None, {prior.input: latents(seed, n, prior.noise_dim)})[0]


def to_uint8(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Graph outputs (N, 1, 28, 28) in ``value_range`` -> (N, 28, 28) gray levels 0-255."""
    low, high = value_range
    scaled = (np.asarray(images, np.float32)[:, 0] - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def interpolate(start: np.ndarray, end: np.ndarray, frames: int) -> np.ndarray:
    """``frames`` evenly spaced points on the straight line from ``start`` to ``end`` (inclusive)."""
    weights = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]
    return (1.0 - weights) * start[None] + weights * end[None]


def sample_digits(sampling: LatentSampling, seed: int, n: int, digit: int | None) -> np.ndarray | None:
    """The label of each sample of a latent model that takes one (None for one that does not): the
    requested digit, or, when none was asked for, labels drawn from the seed (a stream apart from
    the latents', so the same seed gives the same styles either way): with the card's
    ``label_weights`` (a self-conditioned model's clusters), else digits 0-9 uniformly."""
    if sampling.label_input is None:
        return None
    if sampling.label_weights is not None:
        if digit is not None:  # its labels are clusters, not digits
            raise ValueError("a self-conditioned model draws its own clusters: no digit can be asked of it")
        weights = np.asarray(sampling.label_weights, np.float64)
        rng = np.random.default_rng([seed, 1])
        return rng.choice(len(weights), n, p=weights / weights.sum()).astype(np.int64)
    if digit is not None:
        return np.full(n, digit, np.int64)
    return np.random.default_rng([seed, 1]).integers(0, 10, n).astype(np.int64)


def decode(sampling: LatentSampling, run: Run, z: np.ndarray, digits: np.ndarray | None = None) -> np.ndarray:
    """Latent points (N, latent_dim), and each one's label for a model that takes one, through a
    decoder or generator graph -> uint8 digits (N, 28, 28)."""
    feeds = {sampling.input: np.asarray(z, np.float32)}
    if sampling.label_input is not None:
        if digits is None:
            raise ValueError("a conditional decoder needs each latent point's digit (or cluster)")
        feeds[sampling.label_input] = np.asarray(digits, np.int64)
    return to_uint8(run(feeds), sampling.output_range)


def encoder_input(normalized: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """A digit prepared for the classifier (``images.to_mnist``) in a generative model's pixel range."""
    low, high = value_range
    return (low + (high - low) * (normalized * MNIST_STD + MNIST_MEAN)).astype(np.float32)


def scheduler_for(sampling: DDIMSampling) -> DDIMScheduler:
    schedule = sampling.schedule
    return DDIMScheduler(linear_betas(schedule.train_steps, schedule.beta_start, schedule.beta_end))


def generate(sampling: LatentSampling | DDIMSampling, sessions: Mapping[str, ort.InferenceSession], seed: int,
             n: int, digit: int | None = None, steps: int | None = None, guidance: float | None = None,
             stop: Stop = never, progress: Progress | None = None, eta: float | None = None) -> np.ndarray:
    """``n`` uint8 digits (N, 28, 28) from a model whose card's ``sampling`` says how to draw them
    (``card.sampling_of`` types the JSON section for tools that read cards directly).

    ``latent``: one decoder/generator call on ``latent_points(seed, ...)`` (with ``sample_digits``
    for a conditional one); ``ddim``: the DDIM loop on
    the step graph (the guided one when a digit is asked for), ``steps`` and ``guidance``
    defaulting to the card's, and ``eta`` the noise each step adds (0, the default: none).
    ``stop`` is asked before each step: true ends the loop early
    (``SamplingStopped``), when the caller has gone. ``progress`` hears of each DDIM step, with
    the digits predicted at that step as uint8 (a latent model's one call reports nothing).
    """
    if isinstance(sampling, LatentSampling):
        return decode(sampling, lambda feeds: sessions["model"].run(None, feeds)[0],
                      latent_points(sampling, sessions, seed, n), sample_digits(sampling, seed, n, digit))
    guided = digit is not None
    steps, guidance = sampling.resolved(steps, guidance)
    images = ddim_sample_on_device(sessions[GUIDED_STEP_GRAPH if guided else STEP_GRAPH], guided,
                                   scheduler_for(sampling), seed, n, steps, digit, guidance,
                                   null_label=sampling.null_label, stop=stop, eta=eta or 0.0,
                                   progress=progress and (lambda done, estimate: progress(
                                       done, lambda: to_uint8(estimate(), sampling.output_range))))
    # The loop's last step shrank the arena; the pages that freed go back to the system too (a
    # trim: 0.1-3 ms, where sampling takes 20-1,000 ms).
    release_freed_memory()
    return to_uint8(images, sampling.output_range)
