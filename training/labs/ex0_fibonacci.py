"""Exercise 0: a linear model learns the Fibonacci recurrence F(n+2) = F(n) + F(n+1).

As the notes set it up: seven consecutive pairs (0, 1) ... (8, 13) with their successors as
targets, ``nn.Linear(2, 1)``, MSE, SGD with learning rate 0.01 and momentum 0.9, and the pair
(13, 21) -> 34 as the test. What the notes get wrong:
- Ten epochs. The two inputs are nearly collinear (each pair's ratio tends to the golden ratio),
  so the loss has one steep and one very flat direction: ten epochs leave the model bouncing
  across the steep one (the notes' losses jump between 0.7 and 92) and nowhere near the answer.
  The exact solution, weights (1, 1) and bias 0, fits all seven pairs with zero error; it takes
  thousands of full-batch steps along the flat direction to get there.
- One test pair says little. Here the model also predicts F(n+2) from (F(n), F(n+1)) for n up
  to 90, where the fit's small weight errors grow with the numbers, and float32 itself stops
  representing Fibonacci numbers exactly past 2^24 (F(37)).
- The notes' last cell feeds ``[34.0, 21.0]``: the pair in the wrong order (it should be
  ``[21.0, 34.0]``), so its 36.98 is not a prediction of 55.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import full_batch, publish

NAME = "ex0"
TRAIN_PAIRS = 7
FURTHEST = 90
EXACT_IN_FLOAT32 = 2**24  # integers above this are not all representable in float32


def fibonacci(count: int) -> list[int]:
    numbers = [0, 1]
    while len(numbers) < count:
        numbers.append(numbers[-1] + numbers[-2])
    return numbers


def pairs(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (F(n), F(n+1)) and targets F(n+2) for n in [start, stop), in float32."""
    f = fibonacci(stop + 2)
    inputs = torch.tensor([[f[n], f[n + 1]] for n in range(start, stop)], dtype=torch.float32)
    return inputs, torch.tensor([[f[n + 2]] for n in range(start, stop)], dtype=torch.float32)


def train(epochs: int, seed: int = 0) -> tuple[nn.Linear, list[float]]:
    torch.manual_seed(seed)
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = pairs(0, TRAIN_PAIRS)
    return model, full_batch(model, optimizer, x, y, epochs)


def relative_errors(weights: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """|prediction - F(n+2)| / F(n+2) in float32 for n = 1 .. FURTHEST (targets exact in float64)."""
    x, _ = pairs(1, FURTHEST + 1)
    truth = np.array(fibonacci(FURTHEST + 3)[3:FURTHEST + 3], dtype=np.float64)
    predicted = (x @ weights.reshape(2, 1) + bias).squeeze(1).double().numpy()
    return np.abs(predicted - truth) / truth


def run(tiny: bool = False) -> dict:
    notes_model, notes_losses = train(epochs=10)
    model, losses = train(epochs=300 if tiny else 5000)
    test_x, test_y = pairs(TRAIN_PAIRS, TRAIN_PAIRS + 1)
    weights, bias = model.weight.detach()[0], model.bias.detach()
    with torch.no_grad():
        test_prediction = float(model(test_x))
        notes_prediction = float(notes_model(test_x))
    learned = relative_errors(weights, bias)
    recurrence = relative_errors(torch.ones(2), torch.zeros(1))  # the exact rule, in float32
    first_inexact = next(n for n in range(1, FURTHEST + 1) if fibonacci(n + 3)[n + 2] > EXACT_IN_FLOAT32)
    figures = {
        "notes_setup": {"epochs": 10, "losses": notes_losses, "test_prediction": notes_prediction,
                        "weights": notes_model.weight.detach()[0].tolist(), "bias": float(notes_model.bias.detach())},
        "epochs": len(losses), "final_train_loss": losses[-1],
        "weights": weights.tolist(), "bias": float(bias),
        "distance_from_recurrence": float(torch.linalg.vector_norm(torch.cat([weights - 1, bias]))),
        "test": {"input": test_x[0].tolist(), "target": float(test_y), "prediction": test_prediction,
                 "squared_error": (test_prediction - float(test_y)) ** 2},
        "relative_error_at_n": {str(n): float(learned[n - 1]) for n in (10, 20, 30, 40, 60, FURTHEST)},
        "exact_recurrence_in_float32": {
            "first_n_whose_target_exceeds_2^24": first_inexact,
            "max_relative_error_below": float(recurrence[:first_inexact - 1].max()),
            "max_relative_error_from": float(recurrence[first_inexact - 1:].max())},
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    left.plot(notes_losses, "o-", label="the notes' 10 epochs")
    left.plot(losses, label=f"{len(losses)} epochs")
    left.set(xscale="log", yscale="log", xlabel="epoch", ylabel="training MSE", title="SGD + momentum 0.9, lr 0.01")
    left.legend()
    n = np.arange(1, FURTHEST + 1)
    right.plot(n, np.maximum(learned, 1e-12), label=f"learned w={np.round(weights.numpy(), 4)}, b={float(bias):.4f}")
    right.plot(n, np.maximum(recurrence, 1e-12), label="exact rule (1, 1, 0) in float32")
    right.axvline(first_inexact, color="grey", linestyle=":", label="target > 2^24")
    right.set(yscale="log", xlabel="n (predicting F(n+2))", ylabel="relative error (floor 1e-12)",
              title="extrapolating the recurrence")
    right.legend(fontsize=8)
    return publish(NAME, figures, fig)
