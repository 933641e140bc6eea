"""Exercise 6: garbage in, garbage out, as a curve over the label noise.

As the notes set it up: y = 2x + 1 with x ~ N(0, 10^2), 100 training points, ``nn.Linear(1, 1)``,
MSE, SGD at lr 0.001, and Gaussian noise of standard deviation 15 added to the labels. What the
notes get wrong: the garbage run calls ``train_model`` without its data (it cannot run as
printed), 100 epochs leave even the clean fit's bias short of 1 (the clean loss still falls at
epoch 100), and one noise level is one point. Here the noise goes from 0 to 50, each level is
trained five times (new points and noise each time) to convergence, and each fit is scored on
1,000 clean points from the same x distribution: the error that matters to whoever uses it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import full_batch, publish

NAME = "ex6"
WEIGHT, BIAS, POINTS = 2.0, 1.0, 100
NOISE_LEVELS = (0.0, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0)


def fit(noise: float, seed: int, epochs: int) -> tuple[float, float, float]:
    """Learned weight and bias, and the MSE against the clean line on fresh points."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(POINTS, 1, generator=generator) * 10
    y = WEIGHT * x + BIAS + torch.randn(POINTS, 1, generator=generator) * noise
    torch.manual_seed(seed)
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    full_batch(model, optimizer, x, y, epochs)
    x_test = torch.randn(1000, 1, generator=generator) * 10
    with torch.no_grad():
        clean_error = float(nn.functional.mse_loss(model(x_test), WEIGHT * x_test + BIAS))
    return float(model.weight.detach()), float(model.bias.detach()), clean_error


def run(tiny: bool = False) -> dict:
    levels, repeats, epochs = ((0.0, 5.0, 15.0, 50.0), 2, 1000) if tiny else (NOISE_LEVELS, 5, 3000)
    rows = []
    for noise in levels:
        fits = np.array([fit(noise, seed, epochs) for seed in range(repeats)])
        rows.append({"noise_std": noise, "weight_mean": float(fits[:, 0].mean()), "weight_std": float(fits[:, 0].std()),
                     "bias_mean": float(fits[:, 1].mean()), "bias_std": float(fits[:, 1].std()),
                     "clean_test_mse_mean": float(fits[:, 2].mean()), "clean_test_mse_std": float(fits[:, 2].std())})
    notes_clean = fit(0.0, 0, 100)  # the notes' 100 epochs, on clean labels
    figures = {"true": {"weight": WEIGHT, "bias": BIAS}, "repeats": repeats, "epochs": epochs, "levels": rows,
               "notes_100_epochs_clean": {"weight": notes_clean[0], "bias": notes_clean[1],
                                          "clean_test_mse": notes_clean[2]}}
    noise = [row["noise_std"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    left.errorbar(noise, [row["clean_test_mse_mean"] for row in rows],
                  yerr=[row["clean_test_mse_std"] for row in rows], marker="o", capsize=3)
    left.set(xlabel="label noise (std)", ylabel="MSE against the clean line", yscale="symlog",
             title=f"{POINTS} training points, {repeats} fits per level")
    right.errorbar(noise, [row["weight_mean"] for row in rows], yerr=[row["weight_std"] for row in rows],
                   marker="o", capsize=3, label="weight (true 2)")
    right.errorbar(noise, [row["bias_mean"] for row in rows], yerr=[row["bias_std"] for row in rows],
                   marker="s", capsize=3, label="bias (true 1)")
    right.set(xlabel="label noise (std)", ylabel="learned value", title="what the fit learned")
    right.legend()
    return publish(NAME, figures, fig)
