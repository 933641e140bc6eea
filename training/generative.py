"""What the three generative families share: their data, their batches and their recipe.

Each family (``vae``, ``gan``, ``diffusion``) supplies networks and losses; this module gives
them the same MNIST slices (the classifier's fixed validation split), the same shuffled batches
and one recipe (``GenerativeRecipe``): the card's common fields, and export through the shared
step with ``generative_eval`` as the evaluation and the card's ``sampling`` section, which is all
serving needs to draw samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import torch

from torch import nn

from serving.repository.card import sampling_of

from . import plots
from .data import mnist_arrays
from .export import Graph, Sessions
from .generative_eval import digit_shares, evaluate_generator, feature_session, proportional_counts
from .mnist import validation_split
from .template import Recipe


@dataclass(frozen=True, kw_only=True)
class GenerativeProfile:
    """What every generative family's profile has; each family adds its own hyperparameters."""

    epochs: int
    train_images: int | None  # None: all 55,000 after the validation slice
    eval_images: int  # generated for the card's FID (10,000 in the full profile)
    batch_size: int = 128
    lr: float = 1e-3
    # torch's intra-op threads while training: small convolutions on shared cores run fastest on one.
    threads: int = 1


@dataclass(frozen=True)
class Digits:
    """MNIST pixels scaled to the family's range, (N, 1, 28, 28) float32, with their labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: np.ndarray
    value_range: tuple[float, float]


def scale(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in ``value_range``."""
    low, high = value_range
    return (images.astype(np.float32) / 255.0 * (high - low) + low)[:, None]


def load_digits(train_images: int | None, value_range: tuple[float, float]) -> Digits:
    images, labels = mnist_arrays(train=True)
    val_idx, train_idx = validation_split(len(labels), train_images)
    test_images, _ = mnist_arrays(train=False)
    return Digits(torch.from_numpy(scale(images[train_idx], value_range)), torch.from_numpy(labels[train_idx]),
                  torch.from_numpy(scale(images[val_idx], value_range)), torch.from_numpy(labels[val_idx]),
                  scale(test_images, value_range), value_range)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
            generator: torch.Generator) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """One epoch of shuffled full batches per call (a ragged last batch would skew GAN/BN steps)."""

    def epoch() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]

    return epoch


CLASSES = 10
LABEL_INPUT = "digit"
LABEL_FEATURES = 16  # a conditional network's digit embedding, appended to its latent (or its features)
CONDITIONING = "digit 0-9: each sample is of the digit asked for (none asked: digits drawn uniformly from the seed)"


class Conditioning(nn.Module):
    """A conditional network's label as extra features: (N, k) and labels (N,) -> (N, k + e), a
    learned embedding of the label (a digit, or a cluster) appended. With ``embed_dim`` 0 the
    network is unconditional and this passes the features through, so one definition serves both."""

    def __init__(self, embed_dim: int, classes: int = CLASSES) -> None:
        super().__init__()
        self.embedding = nn.Embedding(classes, embed_dim) if embed_dim else None

    def forward(self, features: torch.Tensor, digit: torch.Tensor | None = None) -> torch.Tensor:
        if self.embedding is None:
            return features
        return torch.cat([features, self.embedding(digit)], dim=1)


def in_proportion(shares: np.ndarray, images: int) -> torch.Tensor:
    """``images`` labels, label k as often as ``shares[k]`` says (largest remainder): what a
    conditional model's validation samples are asked for."""
    return torch.from_numpy(np.repeat(np.arange(len(shares)), proportional_counts(np.asarray(shares), images)))


def selection_digits(images: int) -> torch.Tensor:
    """The digits a conditional model's validation samples are asked for, in the data's proportions."""
    return in_proportion(digit_shares(), images)


def cosine_decay(optimizer: torch.optim.Optimizer, steps: int,
                 enabled: bool = True) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning rate decayed to zero along a cosine over ``steps`` optimizer steps (None when
    not ``enabled``): the last epochs refine instead of jittering."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if enabled else None


def latent_sampling(latent_dim: int, value_range: tuple[float, float], conditional: bool = False,
                    label_input: str | None = None, label_weights: list[float] | None = None) -> dict[str, Any]:
    """The card's ``sampling`` of a decoder or generator fed standard-normal latents ``z``; a
    ``conditional`` one takes the requested digit as ``digit``, a self-conditioned one a
    ``label_input`` drawn with ``label_weights``."""
    labels = ({"label_input": LABEL_INPUT} if conditional else
              {"label_input": label_input, "label_weights": label_weights} if label_input else {})
    return {"kind": "latent", "input": "z", "latent_dim": latent_dim, "output_range": list(value_range), **labels}


class GenerativeRecipe(Recipe[GenerativeProfile]):
    """What the three generative families share: the digits, the card's common fields, and export
    with FID & co. of samples drawn from the graphs as the metrics. A family says how its graphs
    are sampled (``sampling``); a class-conditional twin is a subclass with ``conditioning`` set."""

    task = "image-generation"
    value_range: ClassVar[tuple[float, float]]
    conditioning: ClassVar[str | None] = None  # what a conditional model takes; None: unconditional

    @property
    def conditional(self) -> bool:
        return self.conditioning is not None

    def load(self) -> None:
        # The models directory must hold mnist-cnn: a missing classifier stops the run before training, not after.
        feature_session(self.run.out_root)
        self.digits = load_digits(self.run.limit or self.config.train_images, self.value_range)
        self.epoch = batches(self.digits.x_train, self.labels(), self.batch_images(),
                             torch.Generator().manual_seed(self.run.seed))

    def labels(self) -> torch.Tensor:
        """What the batches carry with each training image: its digit."""
        return self.digits.y_train

    def batch_images(self) -> int:
        """Training images in one batch of the loop."""
        return self.config.batch_size

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch()

    def sampling(self) -> dict[str, Any]:
        """The card's ``sampling``: all serving needs to draw samples from the graphs."""
        raise NotImplementedError

    def card(self, model: nn.Module) -> dict[str, Any]:
        digits = self.digits
        return {"conditional": self.conditional,
                "conditioning": self.conditioning or ("none: unconditional (a digit asked of its endpoint is drawn by "
                                                      "the family's conditional twin, where there is one)"),
                "data": {"source": "MNIST", "train": len(digits.x_train), "validation": len(digits.x_val),
                         "test": len(digits.x_test)}}

    def sample_options(self) -> dict[str, Any]:
        """How the evaluation samples, beyond the card's defaults (a sampler's steps, say)."""
        return {}

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        images = min(self.run.eval_limit or self.config.eval_images, self.config.eval_images)
        return evaluate_generator(self.run.out_root, sampling_of(self.sampling()), sessions, images,
                                  plots.reports_dir(self.name), self.name, conditional=self.conditional,
                                  **self.sample_options())

    def export(self, graphs: dict[str, Graph], card: dict[str, Any]) -> dict[str, Any]:
        return super().export(graphs, {**card, "sampling": self.sampling()})
