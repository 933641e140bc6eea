"""``mnist-cnn``: the digit classifier the seed builds up to, done the modern way.

A small batch-normalised CNN with dropout, light affine augmentation that keeps digits valid
(small rotations, shifts and scaling; no flips), AdamW with a one-cycle schedule, model selection
on a fixed 5,000-image validation slice, and one evaluation on the official 10,000 test images
by running the exported ONNX graph. The graph also outputs the penultimate-layer features that
the generative models' FID is computed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from serving.inference.images import MNIST_MEAN, MNIST_STD, to_mnist
from serving.inference.postprocess import softmax

from . import drift, foreign, metrics, novelty, plots
from .calibration import temperature_card
from .data import load_image_folder, mnist_arrays
from .export import Graph, Sessions, int8_graph, torch_graph
from .template import Learning, Recipe

NAME = "mnist-cnn"
LABELS = [str(digit) for digit in range(10)]
VALIDATION = 5000
EVAL_BATCH = 1000
CALIBRATION_IMAGES = 200  # training images that fix the int8 copy's activation ranges


@dataclass(frozen=True)
class Profile:
    epochs: int
    train_images: int | None  # None: all 55,000 after the validation slice
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    max_rotation_deg: float = 10.0
    max_shift: float = 0.1  # fraction of the image side
    scale_range: tuple[float, float] = (0.9, 1.1)
    # What pictures of paper still have after the upload preprocessing (serving/inference/ink.py): marker
    # strokes thicker than any pen in MNIST, soft focus, faint ink, residual noise. Shares of images.
    thicken: float = 0.35  # strokes grown by 1 or 2 pixels each side
    blur: float = 0.2
    faint: float = 0.2  # ink at 50-100% of its level
    noise: float = 0.2  # Gaussian, sigma up to 0.1 of the ink level


PROFILES = {
    "quick": Profile(epochs=2, train_images=12_000),
    "full": Profile(epochs=6, train_images=None),
}


class DigitCNN(nn.Module):
    """~440k parameters: three conv stages with batch norm, a 256-unit penultimate layer."""

    feature_dim = 256

    def __init__(self, dropout: float = 0.3) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.conv = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),   # 14x14
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),  # 7x7
            *block(64, 128), nn.MaxPool2d(2),                 # 3x3
            nn.Flatten(),
        )
        self.embed = nn.Sequential(nn.Linear(128 * 3 * 3, self.feature_dim, bias=False),
                                   nn.BatchNorm1d(self.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, 10))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.embed(self.conv(image))
        return self.head(features), features


def validation_split(total: int, train_images: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the fixed 5,000-image validation slice (whatever the seed) and of the first
    ``train_images`` of the rest (None: all of them); every MNIST family selects on this slice."""
    order = np.random.default_rng(0).permutation(total)
    return order[:VALIDATION], order[VALIDATION:][:train_images]


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) with the serving side's constants."""
    return ((images.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD)[:, None]


def random_affine(batch: torch.Tensor, profile: Profile, generator: torch.Generator) -> torch.Tensor:
    """Per-image rotation, shift and scale of a whole batch at once (one grid_sample call)."""
    n = batch.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-profile.max_rotation_deg, profile.max_rotation_deg) * math.pi / 180
    scale = uniform(*profile.scale_range)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos, -sin, uniform(-2 * profile.max_shift, 2 * profile.max_shift)], dim=1),
        torch.stack([sin, cos, uniform(-2 * profile.max_shift, 2 * profile.max_shift)], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    background = (0.0 - MNIST_MEAN) / MNIST_STD  # pad with normalized black, not with zeros
    return F.grid_sample(batch - background, grid, align_corners=False, padding_mode="zeros") + background


def random_strokes(batch: torch.Tensor, profile: Profile, generator: torch.Generator) -> torch.Tensor:
    """Per-image stroke thickness, focus, ink level and noise of a normalized batch."""
    ink = batch * MNIST_STD + MNIST_MEAN  # back to 0..1, paper 0

    def chosen(share: float) -> torch.Tensor:
        return (torch.rand(len(ink), generator=generator) < share)[:, None, None, None]

    wide = chosen(0.5)
    grown = torch.where(wide, F.max_pool2d(ink, 5, 1, 2), F.max_pool2d(ink, 3, 1, 1))
    ink = torch.where(chosen(profile.thicken), grown, ink)
    blurred = F.avg_pool2d(ink, 3, 1, 1, count_include_pad=False)
    ink = torch.where(chosen(profile.blur), blurred, ink)
    level = 0.5 + 0.5 * torch.rand(len(ink), 1, 1, 1, generator=generator)
    ink = torch.where(chosen(profile.faint), ink * level, ink)
    sigma = 0.1 * torch.rand(len(ink), 1, 1, 1, generator=generator)
    noisy = (ink + sigma * torch.randn(ink.shape, generator=generator)).clamp(0.0, 1.0)
    ink = torch.where(chosen(profile.noise), noisy, ink)
    return (ink - MNIST_MEAN) / MNIST_STD


def logits_and_features(session, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits, features = [], []
    for start in range(0, len(images), EVAL_BATCH):
        out = session.run(None, {"image": images[start:start + EVAL_BATCH]})
        logits.append(out[0])
        features.append(out[1])
    return np.concatenate(logits), np.concatenate(features)


@lru_cache(maxsize=2)
def _uploaded(pixels: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Digits through ``to_mnist``, once per process: every digit classifier is scored on the same
    10,000 (about 10 s of preprocessing each time otherwise); the novelty threshold needs the
    validation slice's too."""
    images = np.frombuffer(pixels, np.uint8).reshape(shape)
    return np.concatenate([to_mnist(Image.fromarray(image))[None] for image in images])


Probabilities = Callable[[np.ndarray], np.ndarray]  # normalized (N, 1, 28, 28) -> (N, 10), through a graph


def evaluate_digits(probabilities: Probabilities, images_uint8: np.ndarray, labels: np.ndarray, report_dir: Path,
                    name: str = NAME) -> dict[str, Any]:
    """The card's metrics of a digit classifier, computed by running its exported graph on the
    official test set (any classifier: the CNN here, the classical ones in ``classical``)."""
    probs = probabilities(normalize(images_uint8))
    predicted = probs.argmax(axis=1)
    matrix = metrics.confusion_matrix(labels, predicted, 10)
    ten_class = metrics.classification_metrics(labels, predicted, LABELS)
    # Odd vs even (the seed's binary task): P(odd) is the mass of the odd digits.
    odd_score = probs[:, 1::2].sum(axis=1)
    is_odd = labels % 2 == 1
    fpr, tpr, auc = metrics.roc_curve(is_odd, odd_score)
    # The same digits through the serving side's upload preprocessing: a skew check.
    served = _uploaded(images_uint8.tobytes(), images_uint8.shape)
    served_accuracy = float((probabilities(served).argmax(axis=1) == labels).mean())
    return {
        "test_accuracy": ten_class["accuracy"],
        "macro_f1": ten_class["macro_f1"],
        "micro_f1": ten_class["micro_f1"],
        "weighted_f1": ten_class["weighted_f1"],
        "per_class": ten_class["per_class"],
        "test_errors": int((predicted != labels).sum()),
        "test_accuracy_through_upload_preprocessing": served_accuracy,
        "odd_even": metrics.binary_metrics(is_odd, odd_score),
        "confusion_matrix": matrix.tolist(),
        "plots": [
            str(plots.confusion_matrix_plot(matrix, LABELS, report_dir / "confusion_matrix.png",
                                            f"{name}: test confusion matrix")),
            str(plots.roc_plot(fpr, tpr, auc, report_dir / "odd_even_roc.png", f"{name}: odd vs even ROC")),
        ],
    }


class DigitRecipe(Recipe[Profile]):
    name, task, profiles, score = NAME, "image-classification", PROFILES, "best_error"

    def load(self) -> None:
        self.images, self.labels = mnist_arrays(train=True)
        self.val_idx, self.train_idx = validation_split(len(self.labels), self.run.limit or self.config.train_images)
        self.x_train = torch.from_numpy(normalize(self.images[self.train_idx]))
        self.y_train = torch.from_numpy(self.labels[self.train_idx])
        self.x_val = torch.from_numpy(normalize(self.images[self.val_idx]))
        self.y_val = torch.from_numpy(self.labels[self.val_idx])
        self.test_images, self.test_labels = mnist_arrays(train=False)
        self.generator = torch.Generator().manual_seed(self.run.seed)

    def network(self) -> nn.Module:
        return DigitCNN()

    def learning(self, model: nn.Module) -> Learning:
        config = self.config
        steps = config.epochs * math.ceil(len(self.x_train) / config.batch_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        return Learning(optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps))

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        permutation = torch.randperm(len(self.x_train), generator=self.generator)
        for start in range(0, len(permutation), self.config.batch_size):
            idx = permutation[start:start + self.config.batch_size]
            augmented = random_affine(random_strokes(self.x_train[idx], self.config, self.generator), self.config,
                                      self.generator)
            yield augmented, self.y_train[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch[0])[0], batch[1], label_smoothing=0.05)

    def validate(self, model: nn.Module) -> float:
        x_val, y_val = self.x_val, self.y_val
        wrong = sum(int((model(x_val[i:i + EVAL_BATCH])[0].argmax(1) != y_val[i:i + EVAL_BATCH]).sum())
                    for i in range(0, len(x_val), EVAL_BATCH))
        return wrong / len(x_val)  # validation error rate

    def validation_loss(self, model: nn.Module) -> float:
        x_val, y_val = self.x_val, self.y_val
        return sum(F.cross_entropy(model(x_val[i:i + EVAL_BATCH])[0], y_val[i:i + EVAL_BATCH], reduction="sum").item()
                   for i in range(0, len(x_val), EVAL_BATCH)) / len(x_val)

    def graphs(self, model: nn.Module) -> dict[str, Graph]:
        graph = torch_graph(model, "model.onnx", {"image": normalize(self.test_images[:512])}, ["logits", "features"],
                            {"image": "normalized pixels: (x/255 - mean) / std", "logits": "class scores",
                             "features": "penultimate layer (FID feature space)"})
        chunks = (self.x_train[i:i + EVAL_BATCH] for i in range(0, len(self.x_train), EVAL_BATCH))
        features = novelty.features_of(model, chunks)
        # Static int8 copy, calibrated on training images (as ``make bench`` judged it: 200 of them).
        calibration = {"image": normalize(self.images[self.train_idx[:CALIBRATION_IMAGES]])}
        return {"model": graph, "novelty": novelty.graph(features, self.y_train.numpy(), features[:512]),
                "model_int8": int8_graph(graph, calibration)}

    def drift_reference(self) -> dict[str, Any]:
        return drift.label_reference(self.labels[self.train_idx], LABELS)

    def card(self, model: nn.Module) -> dict[str, Any]:
        config = self.config
        return {
            "data": {"source": "MNIST", "train": len(self.train_idx), "validation": VALIDATION,
                     "test": len(self.test_labels)},
            "preprocessing": {"mean": MNIST_MEAN, "std": MNIST_STD, "size": 28,
                              "upload": "serving.inference.images.to_mnist"},
            "labels": LABELS,
            "hyperparameters": {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
                                "weight_decay": config.weight_decay, "optimizer": "AdamW + OneCycle",
                                "label_smoothing": 0.05, "augmentation": {
                                    "rotation_deg": config.max_rotation_deg, "shift": config.max_shift,
                                    "scale": list(config.scale_range), "flips": False,
                                    "strokes_thickened_1_or_2_px": config.thicken, "blurred": config.blur,
                                    "faint_ink": config.faint, "noise_sigma_up_to_0.1": config.noise},
                                "parameters": sum(p.numel() for p in model.parameters())},
        }

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        return evaluate_digits(lambda batch: softmax(logits_and_features(sessions["model"], batch)[0]),
                               self.test_images, self.test_labels, plots.reports_dir(NAME))

    def calibrate(self, sessions: Sessions) -> dict[str, Any]:
        validation_images = self.images[self.val_idx]
        logits = logits_and_features(sessions["model"], normalize(validation_images))[0]
        test_logits = logits_and_features(sessions["model"], normalize(self.test_images))[0]
        return {"probability_calibration": temperature_card(logits, self.labels[self.val_idx], test_logits,
                                                            self.test_labels, plots.reports_dir(NAME),
                                                            f"{NAME}: test reliability"),
                "novelty": _novelty(sessions, validation_images, self.test_images, self.run.seed)}


def _novelty(sessions: Sessions, validation_images: np.ndarray, test_images: np.ndarray, seed: int) -> dict[str, Any]:
    """The card's ``novelty``, every picture through the upload preprocessing as served: the
    threshold flags 5% of the validation digits; the score of the test digits is set against
    letters, scribbles, noise and the hymenoptera photos (``foreign``)."""
    def score(batch: np.ndarray) -> np.ndarray:
        features = logits_and_features(sessions["model"], batch)[1]
        return sessions["novelty"].run(None, {novelty.INPUT: features})[0]

    photos = [image for split in ("train", "val") for image, _ in load_image_folder(split)]
    outside = {kind: score(batch) for kind, batch in foreign.as_digits({**foreign.drawings(seed=seed),
                                                                         "photos": photos}).items()}
    return novelty.card_section(score(_uploaded(validation_images.tobytes(), validation_images.shape)),
                                score(_uploaded(test_images.tobytes(), test_images.shape)), outside,
                                "validation digits")
