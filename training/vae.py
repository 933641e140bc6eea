"""``vae``: a convolutional variational autoencoder trained on the ELBO (the seed's 5.2).

Gaussian encoder q(z|x), standard-normal prior, Bernoulli decoder p(x|z) over gray levels in
[0, 1]. Unconditional: a digit cannot be requested. Two graphs: the decoder (``model``: latent
-> pixel probabilities, what sampling and interpolation draw from) and the encoder (``encoder``:
image -> posterior mean and log-variance, for reconstruction and interpolation between uploads).
The card reports the test-set negative ELBO in nats per image, computed on both graphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .export import Sessions, torch_graph
from .generative import GenerativeProfile, batches, card_fields, latent_sampling, prepare, publish
from .loop import fit

NAME = "vae"
VALUE_RANGE = (0.0, 1.0)
ELBO_SAMPLES_SEED = 0


@dataclass(frozen=True, kw_only=True)
class Profile(GenerativeProfile):
    latent_dim: int = 16
    batch_size: int = 128
    lr: float = 1e-3


PROFILES = {
    "quick": Profile(epochs=2, train_images=None, eval_images=1000),  # about 45 s on 2 idle cores
    "full": Profile(epochs=10, train_images=None, eval_images=10_000),
}


class Encoder(nn.Module):
    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),   # 14x14
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),  # 7x7
            nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 2 * latent_dim),
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.conv(image).chunk(2, dim=1)
        return mean, log_var


class Decoder(nn.Module):
    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 64 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(32, 1, 4, 2, 1),              # 28x28 logits
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(z)
        return torch.sigmoid(logits), logits


class VAE(nn.Module):
    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.encoder, self.decoder = Encoder(latent_dim), Decoder(latent_dim)

    def negative_elbo(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-image -ELBO in nats: Bernoulli reconstruction loss plus KL(q(z|x) || N(0, I))."""
        mean, log_var = self.encoder(image)
        noise = torch.randn(mean.shape, generator=generator)
        _, logits = self.decoder(mean + torch.exp(0.5 * log_var) * noise)
        reconstruction = F.binary_cross_entropy_with_logits(logits, image, reduction="none").sum(dim=(1, 2, 3))
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)
        return reconstruction + kl


def negative_elbo_numpy(mean: np.ndarray, log_var: np.ndarray, logits: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The same bound from graph outputs, in float64: what the card reports."""
    logits, image = logits.astype(np.float64), image.astype(np.float64)
    bce = np.maximum(logits, 0) - logits * image + np.log1p(np.exp(-np.abs(logits)))
    kl = 0.5 * (mean.astype(np.float64) ** 2 + np.exp(log_var) - 1.0 - log_var).sum(axis=1)
    return bce.sum(axis=(1, 2, 3)) + kl


def negative_elbo_on_test(sessions: Sessions, x_test: np.ndarray, latent_dim: int) -> dict[str, Any]:
    """Single-sample -ELBO of every test image through the exported encoder and decoder."""
    mean, log_var = sessions["encoder"].run(None, {"image": x_test})
    noise = np.random.default_rng(ELBO_SAMPLES_SEED).standard_normal(mean.shape, dtype=np.float32)
    _, logits = sessions["model"].run(None, {"z": mean + np.exp(0.5 * log_var) * noise})
    bound = negative_elbo_numpy(mean, log_var, logits, x_test)
    return {"test_negative_elbo_nats": float(bound.mean()), "test_negative_elbo_std": float(bound.std()),
            "test_images": len(x_test), "elbo_samples_per_image": 1}


def train(profile: str = "full", seed: int = 0, limit: int | None = None, out_root: Path | None = None,
          checkpoint: Path | None = None) -> dict:
    config = PROFILES[profile]
    out_root, digits = prepare(config, seed, limit, out_root, VALUE_RANGE)
    generator = torch.Generator().manual_seed(seed)
    model = VAE(config.latent_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def validate(m: VAE) -> float:
        return float(m.negative_elbo(digits.x_val, torch.Generator().manual_seed(0)).mean())

    result = fit(model, batches(digits.x_train, digits.y_train, config.batch_size, generator),
                 step=lambda m, b: m.negative_elbo(b[0]).mean(), validate=validate, optimizer=optimizer,
                 epochs=config.epochs, checkpoint=checkpoint, desc=NAME,
                 threads=config.threads)

    z = np.random.default_rng(1).standard_normal((512, config.latent_dim), dtype=np.float32)
    test = digits.x_test[:512]
    graphs = {
        "model": torch_graph(model.decoder, "model.onnx", {"z": z}, ["image", "logits"],
                             {"z": "latent, N(0, I) prior", "image": "pixel probabilities in [0, 1]"}),
        "encoder": torch_graph(model.encoder, "encoder.onnx", {"image": test}, ["mean", "log_var"],
                               {"image": "pixels in [0, 1]", "mean": "posterior mean",
                                "log_var": "posterior log-variance"}),
    }
    sampling = latent_sampling(config.latent_dim, VALUE_RANGE)
    card = {
        **card_fields(profile, seed, digits),
        "preprocessing": {"pixels": "x / 255 in [0, 1]", "likelihood": "Bernoulli over gray levels (not binarized)"},
        "hyperparameters": {"latent_dim": config.latent_dim, "epochs": config.epochs, "batch_size": config.batch_size,
                            "lr": config.lr, "optimizer": "Adam",
                            "parameters": sum(p.numel() for p in model.parameters())},
        "validation": {"best_negative_elbo_nats": result.best_score, "best_epoch": result.best_epoch,
                       "epochs_run": result.epochs_run},
    }
    return publish(NAME, graphs, sampling, card, config.eval_images, out_root, result.as_card(),
                   extra_metrics=lambda sessions: negative_elbo_on_test(sessions, digits.x_test, config.latent_dim))
