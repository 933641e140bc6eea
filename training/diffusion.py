"""``diffusion``: a DDPM (the seed's 5.4) whose noise predictor is a small class-conditional U-Net.

Training is Ho et al. (2020): T = 1,000 linear betas, random t per image, the network predicts
the noise added (epsilon). The digit label conditions every residual block and is replaced by a
"null" class (index 10) for a fraction of the images, so the one network also learns the
unconditional model that classifier-free guidance needs. Adam with a cosine decay of the learning
rate, steps under bfloat16 autocast where the CPU has bf16 units (``precision``; fp32 weights, the
export is fp32). An exponential moving
average of the weights is what gets exported and evaluated: the noise predictor (x_t, t,
label -> epsilon) as ``model.onnx``, and the same network wrapped in one DDIM step (with and
without classifier-free guidance) as ``step.onnx`` and ``guided_step.onnx``. The schedule
(which timesteps, their alphas) lives in ``serving.inference.ddim`` (NumPy); the step graphs take
the alphas as inputs, so a sampling loop on a GPU keeps the image on the device from the first
step to the last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from serving.inference.ddim import GUIDED_STEP_GRAPH, NULL_LABEL, STEP_GRAPH, linear_betas

from .export import Graph, torch_graph
from .generative import GenerativeProfile, GenerativeRecipe, cosine_decay
from .precision import choose
from .template import Learning

NAME = "diffusion"
VALUE_RANGE = (-1.0, 1.0)
SCHEDULE = {"kind": "linear", "train_steps": 1000, "beta_start": 1e-4, "beta_end": 0.02}
DEFAULT_STEPS = 50
VALIDATION_IMAGES = 1000


@dataclass(frozen=True, kw_only=True)
class Profile(GenerativeProfile):
    eval_steps: int
    # The card's default guidance, chosen per profile by `python -m training.guidance_sweep` on the
    # validation slice (README): the lowest FID among weights that keep the conditional accuracy target.
    guidance: float
    base_channels: int = 16
    p_uncond: float = 0.15
    ema_decay: float = 0.999
    # Min-SNR-gamma loss weights (Hang et al., 2023): min(SNR_t, gamma) / SNR_t takes weight off the
    # nearly clean timesteps, whose easy targets otherwise slow how fast the image's structure is learned.
    min_snr_gamma: float | None = None
    threads: int = 2  # its wider network keeps both cores busy
    bf16: bool = True  # bfloat16 autocast where the CPU has bf16 units (``precision``); fp32 weights and export


PROFILES = {
    # About 3 minutes of training on 2 cores beside a starting server (5 with its evaluation), tuned for the first
    # run (README, "First run"): small batches give 3,400 updates in that time (per image, batch 32
    # costs about what batch 128 does), and min-SNR weighting makes each count; guidance 2 on the
    # validation slice (1.25: FID 8.3, 74% read right; 2: 6.0, 90%; 3: 7.3, 97%).
    "quick": Profile(epochs=2, train_images=None, eval_images=1000, eval_steps=DEFAULT_STEPS, guidance=2.0,
                     batch_size=32, lr=2e-3, ema_decay=0.995, min_snr_gamma=5.0),
    # 1.25 and 1.5 tie on validation FID, 2.0 costs more; rerun the sweep and `choose` after retraining.
    "full": Profile(epochs=24, train_images=None, eval_images=10_000, eval_steps=DEFAULT_STEPS, guidance=1.25,
                    base_channels=32),
}


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The Transformer's sinusoids of the (integer) timestep, as in DDPM."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the time-and-class embedding added in between."""

    def __init__(self, cin: int, cout: int, embed_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.embed = nn.Linear(embed_dim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.embed(embedding)[:, :, None, None]
        return self.conv2(F.silu(self.norm2(h))) + self.skip(x)


class UNet(nn.Module):
    """28 -> 14 -> 7 and back with skip connections; channels c, 2c, 4c."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.embed_dim = 4 * c
        self.time = nn.Sequential(nn.Linear(self.embed_dim, self.embed_dim), nn.SiLU(),
                                  nn.Linear(self.embed_dim, self.embed_dim))
        self.label = nn.Embedding(NULL_LABEL + 1, self.embed_dim)
        self.inp = nn.Conv2d(1, c, 3, padding=1)
        self.down1, self.pool1 = ResBlock(c, c, self.embed_dim), nn.Conv2d(c, c, 3, 2, 1)
        self.down2, self.pool2 = ResBlock(c, 2 * c, self.embed_dim), nn.Conv2d(2 * c, 2 * c, 3, 2, 1)
        self.mid = ResBlock(2 * c, 4 * c, self.embed_dim)
        self.up2 = ResBlock(4 * c + 2 * c, 2 * c, self.embed_dim)
        self.up1 = ResBlock(2 * c + c, c, self.embed_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        e = self.time(timestep_embedding(t, self.embed_dim)) + self.label(label)
        h1 = self.down1(self.inp(x), e)                                     # c @ 28
        h2 = self.down2(self.pool1(h1), e)                                  # 2c @ 14
        h = self.mid(self.pool2(h2), e)                                     # 4c @ 7
        h = self.up2(torch.cat([F.interpolate(h, scale_factor=2.0), h2], dim=1), e)  # 2c @ 14
        h = self.up1(torch.cat([F.interpolate(h, scale_factor=2.0), h1], dim=1), e)  # c @ 28
        return self.out(h)


class DenoisingStep(nn.Module):
    """One DDIM step (eta = 0) around the noise predictor: x_t -> x_prev.

    The maths of ``serving.inference.ddim.DDIMScheduler.step`` (its NumPy reference) in the graph,
    with the step's alphas as per-row inputs; ``guided`` adds classifier-free guidance, running
    the conditional and the null-label rows as one batch of 2N.
    """

    def __init__(self, net: nn.Module, guided: bool) -> None:
        super().__init__()
        self.net, self.guided = net, guided

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor, alpha: torch.Tensor,
                alpha_prev: torch.Tensor, guidance: torch.Tensor | None = None) -> torch.Tensor:
        if self.guided:
            n = x.shape[0]
            both = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([label, torch.full_like(label, NULL_LABEL)]))
            conditional, unconditional = both[:n], both[n:]
            eps = unconditional + guidance[:, None, None, None] * (conditional - unconditional)
        else:
            eps = self.net(x, t, label)
        a, a_prev = alpha[:, None, None, None], alpha_prev[:, None, None, None]
        x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1.0, 1.0)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def step_inputs(alphas_cumprod: np.ndarray, rows: int, rng: np.random.Generator, guided: bool) -> dict[str, np.ndarray]:
    """Parity inputs for a step graph: timesteps with the gaps 1-, 20- and 50-step schedules take."""
    t = rng.integers(0, len(alphas_cumprod), rows)
    previous = t - rng.choice([1, 20, 50], rows)
    inputs = {"x": rng.standard_normal((rows, 1, 28, 28), dtype=np.float32), "t": t.astype(np.int64),
              "label": rng.integers(0, NULL_LABEL + 1, rows).astype(np.int64),
              "alpha": alphas_cumprod[t].astype(np.float32),
              "alpha_prev": np.where(previous >= 0, alphas_cumprod[np.maximum(previous, 0)], 1.0).astype(np.float32)}
    if guided:
        inputs["guidance"] = rng.uniform(0.0, 5.0, rows).astype(np.float32)
    return inputs


class DDPM(nn.Module):
    """The trained network and its weight average, one module for the loop's checkpoints."""

    def __init__(self, config: Profile) -> None:
        super().__init__()
        self.net = UNet(config.base_channels)
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
        alphas_cumprod = np.cumprod(1.0 - linear_betas(SCHEDULE["train_steps"], SCHEDULE["beta_start"],
                                                       SCHEDULE["beta_end"]))
        self.register_buffer("alphas_cumprod", torch.tensor(alphas_cumprod, dtype=torch.float32))

    def loss(self, net: nn.Module, x0: torch.Tensor, label: torch.Tensor, t: torch.Tensor,
             noise: torch.Tensor, min_snr_gamma: float | None = None) -> torch.Tensor:
        """Noise-prediction MSE at timesteps ``t``: x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps."""
        a = self.alphas_cumprod[t][:, None, None, None]
        error = (net(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, label).float() - noise).pow(2)
        if min_snr_gamma is None:
            return error.mean()
        snr = a / (1 - a)
        return (error * snr.clamp(max=min_snr_gamma) / snr).mean()


class DiffusionRecipe(GenerativeRecipe):
    name, profiles, value_range, score = NAME, PROFILES, VALUE_RANGE, "best_ema_noise_mse"
    score_is_validation_loss = True

    @property
    def conditioning(self) -> str:  # type: ignore[override]
        return (f"optional digit 0-9, classifier-free guidance (label dropped to {NULL_LABEL} for "
                f"{self.config.p_uncond:.0%} of training images)")

    def load(self) -> None:
        super().load()
        config, digits = self.config, self.digits
        self.precision = choose(config.bf16)
        print(f"{NAME}: autocast {self.precision.autocast} ({self.precision.reason})", flush=True)
        # Validation: the averaged weights' loss on fixed images, timesteps, noise and label drops.
        fixed = torch.Generator().manual_seed(0)
        self.x_val, y_val = digits.x_val[:VALIDATION_IMAGES], digits.y_val[:VALIDATION_IMAGES]
        self.t_val = torch.randint(0, SCHEDULE["train_steps"], (len(self.x_val),), generator=fixed)
        self.noise_val = torch.randn(self.x_val.shape, generator=fixed)
        self.y_val = torch.where(torch.rand(len(y_val), generator=fixed) < config.p_uncond, NULL_LABEL, y_val)

    def network(self) -> DDPM:
        return DDPM(self.config)

    def learning(self, model: DDPM) -> Learning:
        optimizer = torch.optim.Adam(model.net.parameters(), lr=self.config.lr)
        optimizer.register_step_post_hook(lambda *_: model.ema.update_parameters(model.net))
        steps = self.config.epochs * (len(self.digits.x_train) // self.config.batch_size)
        return Learning(optimizer, cosine_decay(optimizer, steps), threads=self.config.threads)

    def loss(self, model: DDPM, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        config = self.config
        x0, label = batch
        dropped = torch.rand(len(label)) < config.p_uncond
        label = torch.where(dropped, torch.full_like(label, NULL_LABEL), label)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision.bf16):
            return model.loss(model.net, x0, label, torch.randint(0, SCHEDULE["train_steps"], (len(x0),)),
                              torch.randn_like(x0), config.min_snr_gamma)

    def validate(self, model: DDPM) -> float:
        return float(model.loss(model.ema.module, self.x_val, self.y_val, self.t_val, self.noise_val))

    def graphs(self, model: DDPM) -> dict[str, Graph]:
        network = model.ema.module.eval()
        rng = np.random.default_rng(2)
        alphas_cumprod = model.alphas_cumprod.numpy().astype(np.float64)
        units = {"x": "noisy image x_t, data in [-1, 1]", "t": "timestep 0..999",
                 "label": f"digit 0-9, {NULL_LABEL}: none", "eps": "predicted noise",
                 "alpha": "alpha-bar at t", "alpha_prev": "alpha-bar at the next timestep (1 after the last)",
                 "guidance": "classifier-free guidance weight", "x_prev": "the image one DDIM step on"}
        eps_inputs = {"x": rng.standard_normal((512, 1, 28, 28), dtype=np.float32),
                      "t": rng.integers(0, SCHEDULE["train_steps"], 512).astype(np.int64),
                      "label": rng.integers(0, NULL_LABEL + 1, 512).astype(np.int64)}
        return {
            "model": torch_graph(network, "model.onnx", eps_inputs, ["eps"], units),
            STEP_GRAPH: torch_graph(DenoisingStep(network, guided=False), "step.onnx",
                                    step_inputs(alphas_cumprod, 512, rng, guided=False), ["x_prev"], units),
            GUIDED_STEP_GRAPH: torch_graph(DenoisingStep(network, guided=True), "guided_step.onnx",
                                           step_inputs(alphas_cumprod, 256, rng, guided=True), ["x_prev"], units),
        }

    def sampling(self) -> dict[str, Any]:
        return {"kind": "ddim", "schedule": SCHEDULE, "default_steps": DEFAULT_STEPS,
                "default_guidance": self.config.guidance, "null_label": NULL_LABEL,
                "output_range": list(VALUE_RANGE)}

    def sample_options(self) -> dict[str, Any]:
        return {"steps": self.config.eval_steps, "guidance": self.config.guidance}

    def card(self, model: DDPM) -> dict[str, Any]:
        config, precision = self.config, self.precision
        return {
            **super().card(model),
            "preprocessing": {"pixels": "x / 127.5 - 1 in [-1, 1]"},
            "hyperparameters": {"prediction": "epsilon", "base_channels": config.base_channels,
                                "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
                                "optimizer": "Adam, cosine decay", "autocast": precision.autocast,
                                "precision": precision.as_card(), "p_uncond": config.p_uncond,
                                "ema_decay": config.ema_decay, "min_snr_gamma": config.min_snr_gamma,
                                "parameters": sum(p.numel() for p in model.net.parameters())},
        }
