"""The training template: what it adds to a family's card, and the CLI's options per family."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from serving.repository.layout import newest
from training.catalog import recipes
from training.export import Graph, Sessions, torch_graph
from training.loop import FitResult
from training.template import Learning, Recipe, train

X = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]


@dataclass(frozen=True)
class Profile:
    epochs: int


class _Line(Recipe[Profile]):
    name, task, profiles, score = "line", "tabular-regression", {"quick": Profile(epochs=3)}, "best_mse"

    def load(self) -> None:
        self.x, self.y = torch.from_numpy(X), torch.from_numpy(2 * X)

    def network(self) -> nn.Module:
        return nn.Linear(1, 1)

    def learning(self, model: nn.Module) -> Learning:
        return Learning(torch.optim.SGD(model.parameters(), lr=0.1))

    def batches(self) -> list:
        return [(self.x, self.y)]

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    def validate(self, model: nn.Module) -> float:
        return float(self.loss(model, (self.x, self.y)))

    def validation_loss(self, model: nn.Module) -> float:
        return 2 * self.validate(model)  # not the score, to tell the two apart in the card

    def graphs(self, model: nn.Module) -> dict[str, Graph]:
        return {"model": torch_graph(model, "model.onnx", {"x": X}, ["y"], {"x": "any", "y": "2x"})}

    def card(self, model: nn.Module) -> dict[str, Any]:
        return {"data": {"train": len(X)}, "validation": {"rows": len(X)}}

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        return {"test_mae": float(np.abs(sessions["model"].run(None, {"x": X})[0] - 2 * X).mean())}


class _Spent:
    """What a family that learns otherwise says it spent: a fixed record, so the card can be compared with it."""

    def as_card(self) -> dict[str, Any]:
        return {"wall_seconds": 1.5, "cpu_seconds": 2.5, "device": "cpu"}


class _Otherwise(_Line):
    """A family that learns without the loop: no validation record but its own."""

    def learn(self) -> tuple[nn.Module, _Spent]:
        return nn.Linear(1, 1).eval(), _Spent()


def test_a_loop_familys_card_gets_the_runs_fields_and_the_loops_record_before_its_own(tmp_path):
    card = train(_Line, "quick", seed=3, out_root=tmp_path)
    assert (card["task"], card["profile"], card["seed"], card["data"]) == ("tabular-regression", "quick", 3,
                                                                           {"train": 64})
    assert list(card["validation"]) == ["best_mse", "best_epoch", "epochs_run", "history", "rows"]
    assert card["validation"]["epochs_run"] == len(card["validation"]["history"]) == 3
    assert card["validation"]["best_mse"] == min(epoch["val_score"] for epoch in card["validation"]["history"])
    # The learning curve: each epoch's training loss, and the loss on the validation data beside the score.
    assert all(epoch["val_loss"] == 2 * epoch["val_score"] and epoch["train_loss"] > 0
               for epoch in card["validation"]["history"])
    # The cost is the loop's record added up: the card's training section is its epochs' total.
    assert card["training"] == FitResult.total_card([FitResult(0, 0, 3, card["validation"]["history"])])
    assert (newest(tmp_path / "line") / "card.json").is_file()


def test_a_family_that_learns_otherwise_says_what_it_spent(tmp_path):
    card = train(_Otherwise, "quick", out_root=tmp_path)
    assert card["validation"] == {"rows": 64}  # no loop, no loop record
    assert card["training"] == _Spent().as_card()


def test_each_familys_cli_options_are_its_own_keywords():
    families = recipes()
    assert families["transfer-cnn"].options == ("backbone", "mode", "weights", "image_folder")
    for name, recipe in families.items():
        assert set(recipe.options) <= set(inspect.signature(recipe.__init__).parameters), name
        assert recipe.name == name and recipe.task and recipe.profiles.keys() >= {"quick", "full"}, name
