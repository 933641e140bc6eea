"""``gan``: a DCGAN-style generator and its critic (the seed's 5.3), two objectives.

``non-saturating`` (both profiles): the original GAN's logistic loss, the generator maximising
log D(G(z)), with spectral norm on every critic layer (Miyato et al., 2018) to keep the critic
Lipschitz at the cost of one power iteration per layer and step. ``wgan-gp``: the critic
estimates the Wasserstein-1 distance, the gradient penalty (lambda 10, on random interpolates)
keeps it 1-Lipschitz, and it takes several steps per generator step; on 2 cores the same
minutes buy it a fifth of the generator steps (its 20-epoch run, 3,420 generator steps, ended
55x above the old floor; README).
The full profile adds what the literature uses to finish a GAN: a cosine decay of both
learning rates to zero and an exponential moving average of the generator's weights (and of
its batch-norm statistics), which is what gets scored and exported. The epoch kept is the one
whose averaged generator's samples have the lowest FID against the validation slice. The
exported graph is the generator: latent -> digit in [-1, 1]. The full profile's GAN is also
self-conditioned (Liu et al., 2020): k-means clusters of the training images' pixels, found
without the digit labels, condition it the way digits condition ``gan-conditional`` below, and
each sample's cluster is drawn in the clusters' training proportions (the card's
``sampling.label_weights``), so to its clients it stays unconditional; its graph takes ``z``
and ``cluster``.

``gan-conditional`` is the same family told which digit to draw: the generator appends a learned
embedding of the digit to its latent, and the critic is a projection discriminator (Miyato &
Koyama, 2018): its score gains the inner product of its features with the digit's embedding,
so it judges whether an image is a real example *of that digit*. Trained on the real images'
labels; its graph takes ``z`` and ``digit``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from serving.inference.generation import to_uint8

from .export import Graph, torch_graph
from .generative import (CLASSES, CONDITIONING, LABEL_FEATURES, LABEL_INPUT, Conditioning, GenerativeProfile,
                         GenerativeRecipe, cosine_decay, in_proportion, latent_sampling, selection_digits)
from .generative_eval import selection_fid
from .template import Learning

NAME = "gan"
VALUE_RANGE = (-1.0, 1.0)
SELECTION_IMAGES = 2000
# What a GAN's curve calls its validation loss: not the generator's training loss on other data.
VALIDATION_LOSS = ("the critic's objective on validation digits against samples from fixed latents, without the "
                   "penalty (WGAN-GP: minus the critic's Wasserstein estimate)")
CLUSTER_INPUT = "cluster"
CLUSTER_COMPONENTS = 50


@dataclass(frozen=True, kw_only=True)
class Profile(GenerativeProfile):
    latent_dim: int = 64
    width: int = 32
    batch_size: int = 64
    # "wgan-gp", or "non-saturating" (the original GAN's -log D(G(z)) for the generator, spectral
    # norm in the critic): the latter makes recognisable digits in a few hundred steps, WGAN-GP
    # needs thousands but ends with a lower FID.
    objective: str = "wgan-gp"
    critic_steps: int = 5
    gradient_penalty: float = 10.0
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    # The full profile's finish: both learning rates decay to zero along a cosine, and the generator
    # scored and exported is an exponential moving average of its weights (None: the raw weights).
    cosine_decay: bool = False
    ema_decay: float | None = None
    # Self-conditioning (Liu et al., 2020) of the unconditional GAN: k-means clusters of the
    # training images (no digit labels) condition generator and critic as digits condition the
    # conditional twin, and samples draw clusters in their training proportions. 0: none.
    clusters: int = 0


FULL_EPOCHS = 30

PROFILES = {
    # About 50 s on 2 idle cores for the first run (README, "First run"): 1,700 non-saturating steps
    # make strokes and rough digits (FID 32) where WGAN-GP's 37 generator steps made static (FID 334).
    "quick": Profile(epochs=1, train_images=None, eval_images=1000, objective="non-saturating", critic_steps=1,
                     batch_size=32, betas=(0.5, 0.999)),
    "full": Profile(epochs=FULL_EPOCHS, train_images=None, eval_images=10_000, objective="non-saturating",
                    critic_steps=1, width=64, batch_size=64, betas=(0.5, 0.999), cosine_decay=True, ema_decay=0.999,
                    clusters=50),
}
# ``gan-wgan-gp``: the notes' objective on the full GAN's networks, clusters, decay and average, so
# the objective is the only difference. The same epochs are the same CPU budget: an epoch is 55,000
# images through the critic either way, which WGAN-GP spends as five critic steps (each with the
# penalty's double backward) per generator step: 548 ms of one core a generator step against 113 ms,
# 94 s an epoch against 97 s (measured at full width, 2026-12-07), so a fifth of the generator steps.
WGAN_GP = {"objective": "wgan-gp", "critic_steps": 5, "betas": (0.5, 0.9)}
WGAN_GP_PROFILES = {name: replace(profile, **WGAN_GP) for name, profile in PROFILES.items()}


class Generator(nn.Module):
    def __init__(self, latent_dim: int, width: int, label_features: int = 0, classes: int = CLASSES) -> None:
        super().__init__()
        self.condition = Conditioning(label_features, classes)
        self.net = nn.Sequential(
            nn.Linear(latent_dim + label_features, 2 * width * 7 * 7, bias=False), nn.BatchNorm1d(2 * width * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh(),  # 28x28
        )

    def forward(self, z: torch.Tensor, digit: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.condition(z, digit))


class Critic(nn.Module):
    def __init__(self, width: int, spectral_norm: bool = False, classes: int = 0) -> None:
        super().__init__()
        norm = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda layer: layer)
        features = 2 * width * 7 * 7
        self.features = nn.Sequential(
            norm(nn.Conv2d(1, width, 4, 2, 1)), nn.LeakyReLU(0.2),              # 14x14
            norm(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2),      # 7x7
            nn.Flatten(),
        )
        self.score = norm(nn.Linear(features, 1))
        self.projection = norm(nn.Embedding(classes, features)) if classes else None  # 0: unconditional

    def forward(self, image: torch.Tensor, digit: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(image)
        score = self.score(h).squeeze(1)
        return score if self.projection is None else score + (self.projection(digit) * h).sum(dim=1)


class WGAN(nn.Module):
    """Both networks in one module, so the shared loop checkpoints and restores them together."""

    def __init__(self, config: Profile, classes: int = 0) -> None:
        super().__init__()
        self.config = config
        self.non_saturating = config.objective == "non-saturating"
        self.generator = Generator(config.latent_dim, config.width, LABEL_FEATURES if classes else 0, classes)
        self.critic = Critic(config.width, spectral_norm=self.non_saturating, classes=classes)
        # Buffers averaged too: the batch-norm statistics must belong to the averaged weights.
        self.average = (AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),
                                      use_buffers=True) if config.ema_decay else None)

    def served(self) -> Generator:
        """The generator that is scored and exported: the weight average when there is one."""
        return self.average.module if self.average is not None else self.generator

    def critic_loss(self, real: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
        """WGAN-GP: E[D(fake)] - E[D(real)] + lambda E[(|grad D(x_hat)| - 1)^2], x_hat between real
        and fake; non-saturating: the logistic loss of telling real (1) from fake (0). A conditional
        generator draws the real images' digits (ignored by an unconditional pair)."""
        with torch.no_grad():
            fake = self.generator(torch.randn(len(real), self.config.latent_dim), digit)
        if self.non_saturating:
            return self.critic_objective(real, fake, digit)
        penalty = ((self.interpolate_gradient_norms(real, fake, digit, create_graph=True) - 1.0) ** 2).mean()
        return self.critic_objective(real, fake, digit) + self.config.gradient_penalty * penalty

    def critic_objective(self, real: torch.Tensor, fake: torch.Tensor, digit: torch.Tensor | None) -> torch.Tensor:
        """The critic's loss without the penalty: E[D(fake)] - E[D(real)] (WGAN), or the logistic loss."""
        if self.non_saturating:
            return F.softplus(-self.critic(real, digit)).mean() + F.softplus(self.critic(fake, digit)).mean()
        return self.critic(fake, digit).mean() - self.critic(real, digit).mean()

    def interpolate_gradient_norms(self, real: torch.Tensor, fake: torch.Tensor, digit: torch.Tensor,
                                   create_graph: bool = False) -> torch.Tensor:
        """|grad D(x_hat)| at random points x_hat between real and fake images: what the penalty
        holds at 1, the slope of a 1-Lipschitz critic along the lines that carry the transport."""
        mix = torch.rand(len(real), 1, 1, 1)
        between = (mix * real + (1 - mix) * fake).requires_grad_(True)
        with torch.enable_grad():
            gradient, = torch.autograd.grad(self.critic(between, digit).sum(), between, create_graph=create_graph)
        return gradient.flatten(1).norm(dim=1)

    def generator_loss(self, digit: torch.Tensor) -> torch.Tensor:
        """One generator step's loss on ``len(digit)`` samples (of those digits, when conditional)."""
        return self.generator_objective(
            self.critic(self.generator(torch.randn(len(digit), self.config.latent_dim), digit), digit))

    def generator_objective(self, scores: torch.Tensor) -> torch.Tensor:
        """The generator's loss from the critic's scores of its samples."""
        return F.softplus(-scores).mean() if self.non_saturating else -scores.mean()


def self_conditioning(images: torch.Tensor, held_out: torch.Tensor, clusters: int,
                      seed: int) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Each training image's k-means cluster (in the 50 leading principal components of its pixels:
    no digit labels), each held-out image's nearest cluster, and the clusters' shares."""
    pca = PCA(CLUSTER_COMPONENTS, random_state=seed)
    kmeans = KMeans(clusters, n_init=4, random_state=seed)
    assigned = kmeans.fit_predict(pca.fit_transform(images.flatten(1).numpy()))
    nearest = kmeans.predict(pca.transform(held_out.flatten(1).numpy()))
    shares = np.bincount(assigned, minlength=clusters) / len(assigned)
    return torch.from_numpy(assigned.astype(np.int64)), torch.from_numpy(nearest.astype(np.int64)), shares.tolist()


class GanRecipe(GenerativeRecipe):
    name, profiles, value_range, score = NAME, PROFILES, VALUE_RANGE, "best_fid_vs_validation"

    def labels(self) -> torch.Tensor:
        """The digits (conditional), or the images' self-conditioning clusters, whose shares the
        samples then draw from (``weights``); an unconditional pair without clusters ignores them."""
        config, digits = self.config, self.digits
        self.classes = CLASSES if self.conditional else config.clusters
        self.weights = None
        if self.conditional or not self.classes:
            self.validation_labels = digits.y_val  # an unconditional pair ignores them
            return digits.y_train
        clusters, self.validation_labels, self.weights = self_conditioning(digits.x_train, digits.x_val,
                                                                           config.clusters, self.run.seed)
        return clusters

    def batch_images(self) -> int:
        # One "batch" of the loop is critic_steps real batches: that many critic steps, then one generator step.
        return self.config.batch_size * self.config.critic_steps

    def load(self) -> None:
        super().load()
        config, digits = self.config, self.digits
        self.selection_score = selection_fid(self.run.out_root, to_uint8(digits.x_val.numpy(), VALUE_RANGE))
        self.z_selection = torch.from_numpy(np.random.default_rng(1).standard_normal(
            (SELECTION_IMAGES, config.latent_dim), dtype=np.float32))
        self.digit_selection = (selection_digits(SELECTION_IMAGES) if self.conditional else
                                in_proportion(self.weights, SELECTION_IMAGES) if self.weights is not None else None)

    def network(self) -> WGAN:
        return WGAN(self.config, self.classes)

    def learning(self, model: WGAN) -> Learning:
        config = self.config
        self.generator_optimizer = torch.optim.Adam(model.generator.parameters(), lr=config.lr, betas=config.betas)
        self.critic_optimizer = torch.optim.Adam(model.critic.parameters(), lr=config.lr, betas=config.betas)
        if model.average is not None:
            self.generator_optimizer.register_step_post_hook(
                lambda *_: model.average.update_parameters(model.generator))
        generator_steps = config.epochs * (len(self.digits.x_train) // self.batch_images())
        return Learning(self.generator_optimizer,
                        cosine_decay(self.generator_optimizer, generator_steps, config.cosine_decay),
                        extra_state={"critic_optimizer": self.critic_optimizer}, threads=config.threads)

    def loss(self, model: WGAN, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """critic_steps critic updates on the group's real batches, then the generator's loss."""
        for param_group in self.critic_optimizer.param_groups:  # the critic follows the generator's schedule
            param_group["lr"] = self.generator_optimizer.param_groups[0]["lr"]
        for real, digit in zip(batch[0].split(self.config.batch_size), batch[1].split(self.config.batch_size)):
            self.critic_optimizer.zero_grad(set_to_none=True)
            model.critic_loss(real, digit).backward()
            self.critic_optimizer.step()
        return model.generator_loss(digit)

    def validation_loss(self, model: WGAN) -> float:
        """The critic's objective on validation digits against fixed samples, without the penalty
        (``VALIDATION_LOSS``): for WGAN-GP minus the critic's estimate of the Wasserstein distance,
        which the notes say follows sample quality; the non-saturating critic's loss does not."""
        real, labels = self.digits.x_val[:SELECTION_IMAGES], self.validation_labels[:SELECTION_IMAGES]
        return float(model.critic_objective(real, model.served()(self.z_selection[:len(real)], labels), labels))

    def validate(self, model: WGAN) -> float:
        return self.selection_score(to_uint8(model.served()(self.z_selection, self.digit_selection).numpy(),
                                             VALUE_RANGE))

    def label_input(self) -> str | None:
        return LABEL_INPUT if self.conditional else CLUSTER_INPUT if self.classes else None

    def graphs(self, model: WGAN) -> dict[str, Graph]:
        rng = np.random.default_rng(2)
        feeds = {"z": rng.standard_normal((512, self.config.latent_dim), dtype=np.float32)}
        units = {"z": "latent, N(0, I)", "image": "pixels in [-1, 1]"}
        label_input = self.label_input()
        if label_input:
            feeds[label_input] = rng.integers(0, self.classes, 512).astype(np.int64)
            units[label_input] = "digit 0-9" if self.conditional else f"cluster 0-{self.classes - 1}"
        return {"model": torch_graph(model.served(), "model.onnx", feeds, ["image"], units)}

    def sampling(self) -> dict[str, Any]:
        return latent_sampling(self.config.latent_dim, VALUE_RANGE, self.conditional,
                               self.label_input() if self.weights else None, self.weights)

    def card(self, model: WGAN) -> dict[str, Any]:
        config = self.config
        return {
            **super().card(model),
            "preprocessing": {"pixels": "x / 127.5 - 1 in [-1, 1]"},
            "hyperparameters": {"objective": config.objective, "latent_dim": config.latent_dim, "width": config.width,
                                "epochs": config.epochs, "batch_size": config.batch_size,
                                "critic_steps_per_generator_step": config.critic_steps,
                                "gradient_penalty_lambda": config.gradient_penalty, "lr": config.lr,
                                "adam_betas": list(config.betas), "cosine_decay": config.cosine_decay,
                                "generator_ema_decay": config.ema_decay,
                                "self_conditioning_clusters": 0 if self.conditional else config.clusters,
                                "label_features": LABEL_FEATURES if self.classes else 0,
                                "generator_steps": self.fitted.epochs_run * (len(self.digits.x_train) // self.batch_images()),
                                "generator_parameters": sum(p.numel() for p in model.generator.parameters()),
                                "critic_parameters": sum(p.numel() for p in model.critic.parameters())},
            "validation": {"selection_images": SELECTION_IMAGES, "val_loss": VALIDATION_LOSS},
        }


class ConditionalGanRecipe(GanRecipe):
    name, conditioning = f"{NAME}-conditional", CONDITIONING


class WganGpRecipe(GanRecipe):
    """The unconditional GAN trained with WGAN-GP instead: served by /generate/wgan-gp."""

    name, profiles = f"{NAME}-wgan-gp", WGAN_GP_PROFILES
