"""The PyTorch side of the engine comparisons: each family's module rebuilt from its card.

A comparison of engines only means something on the same weights, so a module takes the
served graph's initializers when they are its own state_dict under the same names; the
exporter folds BatchNorm into convolutions, though, and then the weights cannot be recovered,
and the caller exports the module afresh instead (``training.export.torch_writer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from training import diffusion, gan, house_price, mnist, passengers, transfer, vae
from training.data import HOUSING_FEATURES
from training.export import torch_reference, torch_writer

Card = dict[str, Any]
Feeds = dict[str, np.ndarray]
Runner = Callable[[Feeds], list[np.ndarray]]  # a module called as a graph is: feeds -> outputs
SERVED, FRESH = "served", "fresh export of the same architecture"  # which graph ONNX Runtime ran


def _passengers(card: Card) -> nn.Module:
    hyper = card["hyperparameters"]
    window = hyper["window"]
    # Placeholder scaling constants: the real ones are buffers, loaded from the graph like the weights.
    scaling = passengers.WindowScaling(np.ones((2, window)), np.ones(2))
    members = [passengers.member_mlp(window - 1, hyper["hidden"][0]) for _ in range(hyper["members"])]
    return passengers.PassengersNet(scaling, members)


# card -> the family's module with the card's hyperparameters (weights: seeded initialisation)
BUILDERS: dict[str, Callable[[Card], nn.Module]] = {
    "mnist-cnn": lambda card: mnist.DigitCNN(),
    # The card's ImageNet backbone, where it has one: from seeded weights its features collapse to a
    # constant, and outputs that ignore the input would make the engines' agreement meaningless.
    "transfer-cnn": lambda card: transfer.TransferNet(transfer.BACKBONES[card["hyperparameters"]["backbone"]](
        card["hyperparameters"]["weights"] == "imagenet"), len(card["labels"])),
    "house-price-mlp": lambda card: house_price.HousePriceMLP(
        np.zeros((2, len(HOUSING_FEATURES)), np.float32), card["hyperparameters"]["width"],
        card["hyperparameters"]["dropout"]),
    "passengers": _passengers,
    "vae": lambda card: vae.Decoder(card["hyperparameters"]["latent_dim"]),
    "gan": lambda card: gan.Generator(card["hyperparameters"]["latent_dim"], card["hyperparameters"]["width"],
                                      card["hyperparameters"].get("label_features", 0),
                                      card["hyperparameters"].get("self_conditioning_clusters") or gan.CLASSES),
    "diffusion": lambda card: diffusion.UNet(card["hyperparameters"]["base_channels"]),
}


def module_for(name: str, card: Card) -> nn.Module:
    """The family's module in eval mode, initialised from seed 0 (the same module every run)."""
    torch.manual_seed(0)
    return BUILDERS[name](card).eval()


def load_served_weights(module: nn.Module, graph: Path) -> bool:
    """Load the graph's initializers into ``module`` if every state_dict entry is one of them,
    under its own name and shape; False (module untouched) when any is missing or folded."""
    initializers = {tensor.name: tensor for tensor in onnx.load(str(graph)).graph.initializer}
    state = module.state_dict()
    if any(key not in initializers or tuple(initializers[key].dims) != tuple(value.shape)
           for key, value in state.items()):
        return False
    module.load_state_dict({key: torch.from_numpy(numpy_helper.to_array(initializers[key]).copy()) for key in state})
    return True


def fresh_export(module: nn.Module, example: Feeds, outputs: list[str], path: Path) -> Path:
    """``module`` exported by the project's own writer, as training exports it."""
    torch_writer(module, example, outputs)(path)
    return path



def compiled_runner(module: nn.Module) -> Runner:
    """The module under ``torch.compile`` (inductor), called as a graph is. ``dynamic=False``: each
    batch size gets the code inductor makes for exactly that shape, compiled at its first call."""
    return torch_reference(torch.compile(module, backend="inductor", dynamic=False))
