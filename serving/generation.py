"""Sampling from the generative models' graphs: seeds, latent draws, DDIM, guidance, PNGs.

Plain NumPy and Pillow around ONNX Runtime calls, so the served samples are the very samples
the card's FID was measured on: training generates its evaluation images through this module,
and serving runs it the same way. Every draw comes from ``np.random.default_rng(seed)`` (PCG64
is the same on every platform), so one seed gives the same bytes anywhere.

The diffusion loop runs the exported step graphs through ONNX Runtime's IO binding: the image
lives in an ``OrtValue`` on the session's device (the GPU under CUDA) from the first step to the
last, and only the finished batch comes back to the host.
"""

from __future__ import annotations

import io
from typing import Callable, Mapping

import numpy as np
import onnxruntime as ort
from PIL import Image

from .card import DDIMSampling, LatentSampling, sampling_of
from .images import MNIST_MEAN, MNIST_STD

MAX_SEED = 2**32 - 1
NULL_LABEL = 10  # the diffusion model's "no digit" class: trained with labels dropped to it
STEP_GRAPH, GUIDED_STEP_GRAPH = "step", "guided_step"  # the diffusion model's one-DDIM-step graphs

# feeds -> the graph's first output, e.g. ``lambda feeds: session.run(None, feeds)[0]``
Run = Callable[[dict[str, np.ndarray]], np.ndarray]


def resolve_seed(seed: int | None) -> int:
    """The request's seed, or a fresh one the answer will name so the client can replay it."""
    return int(np.random.default_rng().integers(0, MAX_SEED, endpoint=True)) if seed is None else seed


def latents(seed: int, n: int, dim: int) -> np.ndarray:
    """``n`` standard-normal latent vectors, the same for the same seed."""
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)


def to_uint8(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Graph outputs (N, 1, 28, 28) in ``value_range`` -> (N, 28, 28) gray levels 0-255."""
    low, high = value_range
    scaled = (np.asarray(images, np.float32)[:, 0] - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def interpolate(start: np.ndarray, end: np.ndarray, frames: int) -> np.ndarray:
    """``frames`` evenly spaced points on the straight line from ``start`` to ``end`` (inclusive)."""
    weights = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]
    return (1.0 - weights) * start[None] + weights * end[None]


class DDIMScheduler:
    """Deterministic DDIM (eta = 0) over a DDPM's noise schedule, diffusers-style.

    ``set_timesteps(n)`` picks ``n`` of the ``T`` training steps, "trailing" spacing so that even
    one step starts from pure noise at ``t = T - 1``; ``step(eps, t, x)`` maps ``x_t`` to the
    next chosen timestep, the last one to ``x_0``. The predicted ``x_0`` is clipped to the data
    range [-1, 1] and the noise re-derived from it, which keeps few-step sampling in range.
    """

    def __init__(self, betas: np.ndarray) -> None:
        self.alphas_cumprod = np.cumprod(1.0 - np.asarray(betas, np.float64))
        self.train_steps = len(self.alphas_cumprod)
        self.timesteps = np.array([], np.int64)
        self._previous: dict[int, int] = {}

    def set_timesteps(self, steps: int) -> None:
        if not 1 <= steps <= self.train_steps:
            raise ValueError(f"steps must be in 1..{self.train_steps}, got {steps}")
        self.timesteps = (np.round(np.arange(self.train_steps, 0, -self.train_steps / steps)) - 1).astype(np.int64)
        self._previous = dict(zip(self.timesteps.tolist(), [*self.timesteps[1:].tolist(), -1]))

    def alphas(self, t: int) -> tuple[float, float]:
        """alpha-bar at ``t`` and at the timestep after it (1 after the last): a step's inputs."""
        previous = self._previous[int(t)]
        return float(self.alphas_cumprod[t]), float(self.alphas_cumprod[previous]) if previous >= 0 else 1.0

    def step(self, eps: np.ndarray, t: int, x: np.ndarray) -> np.ndarray:
        """The DDIM update in NumPy: the reference the exported step graphs are tested against."""
        alpha, alpha_prev = self.alphas(t)
        x0 = np.clip((x - np.sqrt(1.0 - alpha) * eps) / np.sqrt(alpha), -1.0, 1.0)
        eps = (x - np.sqrt(alpha) * x0) / np.sqrt(1.0 - alpha)
        return (np.sqrt(alpha_prev) * x0 + np.sqrt(1.0 - alpha_prev) * eps).astype(np.float32)


def linear_betas(train_steps: int, start: float, end: float) -> np.ndarray:
    """The DDPM paper's schedule (Ho et al., 2020: 1e-4 to 0.02 over 1,000 steps)."""
    return np.linspace(start, end, train_steps, dtype=np.float64)


def guided_eps(run: Run, x: np.ndarray, t: int, digit: int | None, guidance: float) -> np.ndarray:
    """Classifier-free guidance: ``eps_u + w (eps_c - eps_u)``, both in one batch of 2N.

    Without a digit the model runs once, unconditioned (the null label).
    """
    n = len(x)
    steps = np.full(n, t, np.int64)
    if digit is None:
        return run({"x": x, "t": steps, "label": np.full(n, NULL_LABEL, np.int64)})
    labels = np.r_[np.full(n, digit, np.int64), np.full(n, NULL_LABEL, np.int64)]
    both = run({"x": np.concatenate([x, x]), "t": np.concatenate([steps, steps]), "label": labels})
    conditional, unconditional = both[:n], both[n:]
    return unconditional + guidance * (conditional - unconditional)


def initial_noise(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28), dtype=np.float32)


def ddim_sample(run: Run, scheduler: DDIMScheduler, seed: int, n: int, steps: int, digit: int | None,
                guidance: float) -> np.ndarray:
    """``n`` images (N, 1, 28, 28) in [-1, 1] from noise drawn with ``seed``, on the host.

    The reference sampler: NumPy around any noise predictor (the PyTorch network in the
    benchmark, an exact oracle in tests). Serving runs ``ddim_sample_on_device``.
    """
    scheduler.set_timesteps(steps)
    x = initial_noise(seed, n)
    for t in scheduler.timesteps:
        x = scheduler.step(guided_eps(run, x, int(t), digit, guidance), int(t), x)
    return x


class SamplingStopped(Exception):
    """The sampler was asked to stop (its caller has gone) before it finished."""


Stop = Callable[[], bool]


def never() -> bool:
    return False


def session_device(session: ort.InferenceSession) -> tuple[str, int]:
    """Where a session's tensors live: ("cuda", id) when CUDA runs it, else ("cpu", 0)."""
    if session.get_providers()[0] == "CUDAExecutionProvider":
        return "cuda", int(session.get_provider_options()["CUDAExecutionProvider"]["device_id"])
    return "cpu", 0


def ddim_sample_on_device(step: ort.InferenceSession, guided: bool, scheduler: DDIMScheduler, seed: int, n: int,
                          steps: int, digit: int | None, guidance: float, stop: Stop = never) -> np.ndarray:
    """``ddim_sample`` through a step graph with IO binding: no host copy between steps.

    Every step's inputs are placed on the device before the loop; the image alternates between
    two preallocated device buffers, each step reading one and writing the other.
    """
    scheduler.set_timesteps(steps)
    device, device_id = session_device(step)

    borrowed = []  # on the CPU an OrtValue borrows the array's memory: keep the arrays alive

    def on_device(array: np.ndarray) -> ort.OrtValue:
        borrowed.append(array)
        return ort.OrtValue.ortvalue_from_numpy(array, device, device_id)

    def per_row(value: float | int, dtype: type) -> ort.OrtValue:
        return on_device(np.full(n, value, dtype))

    binding = step.io_binding()
    binding.bind_ortvalue_input("label", per_row(NULL_LABEL if digit is None else digit, np.int64))
    if guided:
        binding.bind_ortvalue_input("guidance", per_row(guidance, np.float32))
    schedule = [(per_row(t, np.int64), *(per_row(a, np.float32) for a in scheduler.alphas(t)))
                for t in scheduler.timesteps.tolist()]
    buffers = [ort.OrtValue.ortvalue_from_shape_and_type((n, 1, 28, 28), np.float32, device, device_id)
               for _ in range(2)]
    buffers[0].update_inplace(initial_noise(seed, n))
    for index, (t, alpha, alpha_prev) in enumerate(schedule):
        if stop():
            raise SamplingStopped(f"stopped after {index} of {len(schedule)} steps")
        for name, value in (("t", t), ("alpha", alpha), ("alpha_prev", alpha_prev), ("x", buffers[index % 2])):
            binding.bind_ortvalue_input(name, value)
        binding.bind_ortvalue_output("x_prev", buffers[(index + 1) % 2])
        step.run_with_iobinding(binding)
    # A copy: on the CPU, numpy() is a view of memory that is freed with the OrtValue.
    return np.array(buffers[len(schedule) % 2].numpy())


def png(image: np.ndarray) -> bytes:
    """One uint8 gray image as PNG bytes (no timestamps: the same pixels give the same bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def grid(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """(N, H, W) uint8 -> one image, row-major, ``columns`` wide (default: nearly square)."""
    n, height, width = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    canvas = np.zeros((rows * (height + gap) + gap, columns * (width + gap) + gap), np.uint8)
    for index, image in enumerate(images):
        top, left = gap + (index // columns) * (height + gap), gap + (index % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = image
    return canvas


def decode(sampling: LatentSampling | dict, run: Run, z: np.ndarray) -> np.ndarray:
    """Latent points (N, latent_dim) through a decoder or generator graph -> uint8 digits (N, 28, 28)."""
    sampling = sampling_of(sampling)
    return to_uint8(run({sampling.input: np.asarray(z, np.float32)}), sampling.output_range)


def encoder_input(normalized: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """A digit prepared for the classifier (``images.to_mnist``) in a generative model's pixel range."""
    low, high = value_range
    return (low + (high - low) * (normalized * MNIST_STD + MNIST_MEAN)).astype(np.float32)


def scheduler_for(sampling: DDIMSampling | dict) -> DDIMScheduler:
    schedule = sampling_of(sampling).schedule
    return DDIMScheduler(linear_betas(schedule.train_steps, schedule.beta_start, schedule.beta_end))


def generate(sampling: LatentSampling | DDIMSampling | dict, sessions: Mapping[str, ort.InferenceSession], seed: int, n: int,
             digit: int | None = None, steps: int | None = None, guidance: float | None = None,
             stop: Stop = never) -> np.ndarray:
    """``n`` uint8 digits (N, 28, 28) from a model whose card's ``sampling`` says how to draw them
    (typed, or the card's JSON section as training and the benchmarks read it).

    ``latent``: one decoder/generator call on ``latents(seed, ...)``; ``ddim``: the DDIM loop on
    the step graph (the guided one when a digit is asked for), ``steps`` and ``guidance``
    defaulting to the card's. ``stop`` is asked before each step: true ends the loop early
    (``SamplingStopped``), when the caller has gone.
    """
    sampling = sampling_of(sampling)
    if isinstance(sampling, LatentSampling):
        return decode(sampling, lambda feeds: sessions["model"].run(None, feeds)[0],
                      latents(seed, n, sampling.latent_dim))
    guided = digit is not None
    images = ddim_sample_on_device(sessions[GUIDED_STEP_GRAPH if guided else STEP_GRAPH], guided,
                                   scheduler_for(sampling), seed, n, steps or sampling.default_steps, digit,
                                   sampling.default_guidance if guidance is None else guidance, stop)
    return to_uint8(images, sampling.output_range)
