"""The course notes' PyTorch exercises as reproducible experiments (``python -m training.labs``).

Each lab is one module that follows its exercise as the notes set it up, mends what the notes
get wrong (its docstring says what), and returns its figures; ``publish`` writes them, with the
lab's plot, to ``reports/labs/<name>/``. Every lab is seeded and takes a ``tiny`` switch that the
test suite uses: the same experiment, fewer epochs or repetitions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..plots import reports_dir, save


def publish(name: str, figures: dict[str, Any], fig) -> dict[str, Any]:
    """``figures.json`` and ``plot.png`` in ``reports/labs/<name>/``; the figures, with both paths."""
    folder = reports_dir(f"labs/{name}")
    plot = save(fig, folder / "plot.png")
    figures = {**figures, "plot": str(plot)}
    (folder / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    return {**figures, "figures": str(Path(folder / "figures.json"))}


def full_batch(model, optimizer, x, y, epochs: int, on_gradients: Callable[[], None] = lambda: None) -> list[float]:
    """The labs' one loop: ``epochs`` full-batch steps of mean squared error; each epoch's loss.
    ``on_gradients`` runs between the backward pass and the step (a lab that watches gradients)."""
    from torch import nn

    losses = []
    for _ in range(epochs):
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        on_gradients()
        optimizer.step()
        losses.append(loss.item())
    return losses
