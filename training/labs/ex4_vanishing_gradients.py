"""Exercise 4: vanishing gradients in a deep sigmoid network, against ReLU and a normalised variant.

As the notes set it up: 160 random 10-feature inputs with a noiseless linear target, a network
of ten 5-unit hidden layers, MSE, plain SGD at lr 0.01 for 500 full-batch epochs, and the L2 norm
of the first and the last linear layer's weight gradient each epoch. Here every linear layer's
gradient norm is kept, so the plot shows the decay layer by layer, and the same network is
trained with ReLU (He initialisation, as ReLU layers want) and with batch normalisation before
every sigmoid (Ioffe and Szegedy's placement: each sigmoid then sees pre-activations around 0,
where its slope is largest, instead of saturated ones). Each variant starts from the same seed.
A LayerNorm over the five units before each sigmoid was tried too and did not help: the first
layer's gradient stayed five orders of magnitude below the last's.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import full_batch, publish

NAME = "ex4"
INPUTS, HIDDEN, LAYERS, ROWS = 10, 5, 10, 160


def deep_net(activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = INPUTS
    for _ in range(LAYERS):
        linear = nn.Linear(width, HIDDEN)
        if activation == "relu":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        layers.append(linear)
        if activation == "sigmoid + batchnorm":
            layers.append(nn.BatchNorm1d(HIDDEN))
        layers.append(nn.ReLU() if activation == "relu" else nn.Sigmoid())
        width = HIDDEN
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def train(activation: str, epochs: int) -> tuple[list[float], np.ndarray]:
    """Losses per epoch, and the gradient norm of every linear layer's weights, (epochs, layers)."""
    torch.manual_seed(0)
    x = torch.randn(ROWS, INPUTS)
    y = x @ torch.randn(INPUTS, 1) + torch.randn(1)
    model = deep_net(activation)
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    norms: list[list[float]] = []
    losses = full_batch(model, optimizer, x, y, epochs,
                        on_gradients=lambda: norms.append([float(layer.weight.grad.norm()) for layer in linears]))
    return losses, np.array(norms)


def run(tiny: bool = False) -> dict:
    epochs = 50 if tiny else 500
    figures = {}
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2), dpi=110)
    for activation in ("sigmoid", "relu", "sigmoid + batchnorm"):
        losses, norms = train(activation, epochs)
        mean = norms.mean(axis=0)
        figures[activation] = {
            "first_layer_grad_norm": float(mean[0]), "last_layer_grad_norm": float(mean[-1]),
            "last_over_first": float(mean[-1] / max(mean[0], 1e-30)),
            "mean_grad_norm_per_layer": mean.tolist(), "first_loss": losses[0], "final_loss": losses[-1],
        }
        left.plot(losses, label=activation)
        line, = middle.plot(norms[:, 0], label=f"{activation}: first layer")
        middle.plot(norms[:, -1], linestyle="--", color=line.get_color(), label=f"{activation}: last layer")
        right.plot(range(1, len(mean) + 1), mean, "o-", label=activation)
    figures["epochs"] = epochs
    left.set(yscale="log", xlabel="epoch", ylabel="training MSE", title="loss")
    middle.set(yscale="log", xlabel="epoch", ylabel="weight gradient L2 norm", title="first and last layer")
    right.set(yscale="log", xlabel="linear layer (1 = input side)", ylabel="mean gradient norm",
              title="every layer, averaged over training")
    for ax in (left, middle, right):
        ax.legend(fontsize=7)
    return publish(NAME, figures, fig)
