"""DDIM sampling of the diffusion model: the noise schedule, the scheduler, guidance, the loops.

``DDIMScheduler`` and ``ddim_sample`` are the NumPy reference (tests and the benchmark run them
around any noise predictor); ``ddim_sample_on_device`` is what serving runs: the exported step
graphs through ONNX Runtime's IO binding, the image kept in an ``OrtValue`` on the session's
device (the GPU under CUDA) from the first step to the last, only the finished batch copied back.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnxruntime as ort

from serving.repository.sessions import SHRINK_ARENA

# The "no digit" class training drops labels to; the card names it (sampling.null_label) for the sampler.
NULL_LABEL = 10
STEP_GRAPH, GUIDED_STEP_GRAPH = "step", "guided_step"  # the diffusion model's one-DDIM-step graphs

# feeds -> the graph's first output, e.g. ``lambda feeds: session.run(None, feeds)[0]``
Run = Callable[[dict[str, np.ndarray]], np.ndarray]


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

    def step(self, eps: np.ndarray, t: int, x: np.ndarray, eta: float = 0.0,
             noise: np.ndarray | None = None) -> np.ndarray:
        """The DDIM update in NumPy: the reference the exported step graphs are tested against.
        ``eta`` > 0 adds ``noise`` (standard normal) scaled by ``sigma`` and takes as much from
        the direction term (DDIM, eq. 12): 1 is DDPM's ancestral sampling."""
        alpha, alpha_prev = self.alphas(t)
        x0 = np.clip((x - np.sqrt(1.0 - alpha) * eps) / np.sqrt(alpha), -1.0, 1.0)
        eps = (x - np.sqrt(alpha) * x0) / np.sqrt(1.0 - alpha)
        return mixed(x0, eps, alpha_prev, sigma(alpha, alpha_prev, eta), noise)


def sigma(alpha: float, alpha_prev: float, eta: float) -> float:
    """The standard deviation of the noise a step adds (DDIM, eq. 16): eta times the DDPM
    posterior's, sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev)); 0 at the last step."""
    if eta == 0.0 or alpha_prev >= 1.0:
        return 0.0
    return eta * float(np.sqrt((1.0 - alpha_prev) / (1.0 - alpha) * (1.0 - alpha / alpha_prev)))


def mixed(x0: np.ndarray, eps: np.ndarray, alpha_prev: float, noise_std: float,
          noise: np.ndarray | None) -> np.ndarray:
    """x at the next timestep: the clean image and the noise at its ratio, the direction term
    shortened by the fresh noise's variance, which ``noise`` brings in."""
    x_prev = np.sqrt(alpha_prev) * x0 + np.sqrt(1.0 - alpha_prev - noise_std ** 2) * eps
    if noise_std:
        x_prev = x_prev + noise_std * noise
    return x_prev.astype(np.float32)


def step_noise(seed: int) -> np.random.Generator:
    """The stream of the noise an eta > 0 sampler adds: apart from the initial noise's (``[seed, 2]``),
    so that a seed gives the same bytes anywhere."""
    return np.random.default_rng([seed, 2])


def linear_betas(train_steps: int, start: float, end: float) -> np.ndarray:
    """The DDPM paper's schedule (Ho et al., 2020: 1e-4 to 0.02 over 1,000 steps)."""
    return np.linspace(start, end, train_steps, dtype=np.float64)


def guided_eps(run: Run, x: np.ndarray, t: int, digit: int | None, guidance: float,
               null_label: int = NULL_LABEL) -> np.ndarray:
    """Classifier-free guidance: ``eps_u + w (eps_c - eps_u)``, both in one batch of 2N.

    Without a digit the model runs once, unconditioned (the null label).
    """
    n = len(x)
    steps = np.full(n, t, np.int64)
    if digit is None:
        return run({"x": x, "t": steps, "label": np.full(n, null_label, np.int64)})
    labels = np.r_[np.full(n, digit, np.int64), np.full(n, null_label, np.int64)]
    both = run({"x": np.concatenate([x, x]), "t": np.concatenate([steps, steps]), "label": labels})
    conditional, unconditional = both[:n], both[n:]
    return unconditional + guidance * (conditional - unconditional)


def initial_noise(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28), dtype=np.float32)


def ddim_sample(run: Run, scheduler: DDIMScheduler, seed: int, n: int, steps: int, digit: int | None,
                guidance: float, null_label: int = NULL_LABEL, eta: float = 0.0) -> np.ndarray:
    """``n`` images (N, 1, 28, 28) in [-1, 1] from noise drawn with ``seed``, on the host.

    The reference sampler: NumPy around any noise predictor (the PyTorch network in the
    benchmark, an exact oracle in tests). Serving runs ``ddim_sample_on_device``.
    """
    scheduler.set_timesteps(steps)
    x = initial_noise(seed, n)
    noise = step_noise(seed)
    for t in scheduler.timesteps:
        fresh = noise.standard_normal(x.shape, dtype=np.float32) if eta else None
        x = scheduler.step(guided_eps(run, x, int(t), digit, guidance, null_label), int(t), x, eta, fresh)
    return x


class SamplingStopped(Exception):
    """The sampler was asked to stop (its caller has gone) before it finished."""


Stop = Callable[[], bool]
# After each step: the steps done, and a function giving the clean images predicted at that step
# (called only when a preview is wanted).
Progress = Callable[[int, Callable[[], np.ndarray]], None]


def never() -> bool:
    return False


def _with_noise(x: np.ndarray, deterministic: np.ndarray, alpha: float, alpha_prev: float, eta: float,
                noise: np.ndarray) -> np.ndarray:
    """The step's deterministic output made the eta one: its clean image and noise, mixed again."""
    x0 = predicted_x0(x, deterministic, alpha, alpha_prev)
    eps = (x - np.sqrt(alpha) * x0) / np.sqrt(1.0 - alpha)
    return mixed(x0, eps, alpha_prev, sigma(alpha, alpha_prev, eta), noise)


def predicted_x0(x: np.ndarray, x_prev: np.ndarray, alpha: float, alpha_prev: float) -> np.ndarray:
    """The clean images a DDIM step predicted, from its input and output alone: both are the same
    (clipped) x0 and noise mixed at two known ratios, so two equations give x0 without the step
    graph giving it. The last step's output is x0 itself."""
    if alpha_prev >= 1.0:
        return x_prev
    a, a_prev = np.sqrt(alpha), np.sqrt(alpha_prev)
    s, s_prev = np.sqrt(1.0 - alpha), np.sqrt(1.0 - alpha_prev)
    return ((s_prev * x - s * x_prev) / (a * s_prev - a_prev * s)).astype(np.float32)


def session_device(session: ort.InferenceSession) -> tuple[str, int]:
    """Where a session's tensors live: ("cuda", id) when CUDA runs it, else ("cpu", 0)."""
    if session.get_providers()[0] == "CUDAExecutionProvider":
        return "cuda", int(session.get_provider_options()["CUDAExecutionProvider"]["device_id"])
    return "cpu", 0


def ddim_sample_on_device(step: ort.InferenceSession, guided: bool, scheduler: DDIMScheduler, seed: int, n: int,
                          steps: int, digit: int | None, guidance: float, null_label: int = NULL_LABEL,
                          stop: Stop = never, progress: Progress | None = None, eta: float = 0.0) -> np.ndarray:
    """``ddim_sample`` through a step graph with IO binding: no host copy between steps (but for
    the previews ``progress`` asks for, and with ``eta`` > 0).

    Every step's inputs are placed on the device before the loop; the image alternates between
    two preallocated device buffers, each step reading one and writing the other. The graphs do
    the deterministic step (eta = 0); for eta > 0 the host takes the step's clean image and noise
    back from its input and output (``predicted_x0``) and mixes them again with fresh noise.
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
    binding.bind_ortvalue_input("label", per_row(null_label if digit is None else digit, np.int64))
    if guided:
        binding.bind_ortvalue_input("guidance", per_row(guidance, np.float32))
    schedule = [(per_row(t, np.int64), *(per_row(a, np.float32) for a in scheduler.alphas(t)))
                for t in scheduler.timesteps.tolist()]
    buffers = [ort.OrtValue.ortvalue_from_shape_and_type((n, 1, 28, 28), np.float32, device, device_id)
               for _ in range(2)]
    buffers[0].update_inplace(initial_noise(seed, n))
    noise = step_noise(seed)
    for index, (t, alpha, alpha_prev) in enumerate(schedule):
        if stop():
            raise SamplingStopped(f"stopped after {index} of {len(schedule)} steps")
        for name, value in (("t", t), ("alpha", alpha), ("alpha_prev", alpha_prev), ("x", buffers[index % 2])):
            binding.bind_ortvalue_input(name, value)
        binding.bind_ortvalue_output("x_prev", buffers[(index + 1) % 2])
        # The last step gives back the arena the loop grew (64 digits: 30 MB, which the worker
        # otherwise kept until its next sample); the next sample's first step grows it again.
        step.run_with_iobinding(binding, SHRINK_ARENA if index == len(schedule) - 1 else None)
        x, x_prev = buffers[index % 2], buffers[(index + 1) % 2]
        alphas = scheduler.alphas(int(scheduler.timesteps[index]))
        if eta:
            fresh = noise.standard_normal((n, 1, 28, 28), dtype=np.float32)
            x_prev.update_inplace(_with_noise(x.numpy(), x_prev.numpy(), *alphas, eta, fresh))
        if progress is not None:
            progress(index + 1, lambda x=x, x_prev=x_prev: predicted_x0(x.numpy(), x_prev.numpy(), *alphas))
    # A copy: on the CPU, numpy() is a view of memory that is freed with the OrtValue.
    return np.array(buffers[len(schedule) % 2].numpy())
