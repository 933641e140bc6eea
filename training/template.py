"""The training template: what every family does the same way, written once.

A family is a ``Recipe``: its name, task and profiles, and the steps only it knows. ``train``
looks the profile up, seeds every generator, and runs the steps in one order:

    load  ->  learn  ->  graphs  ->  card  ->  export

- ``learn`` trains a network through the shared loop (``loop.fit``) from the family's
  ``network``, ``learning`` (optimizer, schedule), ``batches``, ``loss`` and ``validate``. A
  family that learns otherwise (scikit-learn estimators, cross-validation first, an ensemble)
  replaces ``learn`` and says what it spent.
- ``card`` gives the family's sections (data, preprocessing, labels, hyperparameters); the
  template adds the task, profile, seed, the loop's validation record and the training's cost.
- ``export`` is the one export step (``export.export_model``): checker, parity gate, and the
  family's ``evaluate`` and ``calibrate`` run on the exported graphs. The generative families
  replace it once, in ``generative.GenerativeRecipe``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Iterable, Mapping, Protocol, TypeVar

import torch
from torch import nn

from .export import Graph, Sessions, export_model, models_dir
from .loop import FitResult, fit, seed_everything

P = TypeVar("P")


class Cost(Protocol):
    """What a training spent, for the card's ``training``: a fit, an ensemble's fits, a stopwatch."""

    def as_card(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Run:
    """One run's settings, as the CLI or a test gives them."""

    profile: str
    seed: int
    limit: int | None  # only the first N training rows (tests)
    out_root: Path
    checkpoint: Path | None  # where the loop saves each epoch and resumes from
    eval_limit: int | None = None  # at most this many generated images for the card's metrics (tests)


@dataclass
class Learning:
    """How a network learns besides its loss: what ``loop.fit`` takes beyond the network."""

    optimizer: torch.optim.Optimizer
    scheduler: Any = None  # a torch LR scheduler
    scheduler_per_batch: bool = True
    patience: int | None = None
    # What else a resumed run needs restored (a second optimizer the loss drives, say).
    extra_state: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None


class Recipe(Generic[P]):
    """A family's steps. Its profile (``config``) and run settings (``run``) are at hand in each."""

    name: ClassVar[str]
    task: ClassVar[str]
    profiles: ClassVar[Mapping[str, Any]]
    # The card's name for the loop's best validation score (lower is better).
    score: ClassVar[str] = "best_validation_score"
    # Keyword options of the family's own (``__init__``), which the CLI passes when given.
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, run: Run) -> None:
        self.run = run
        self.config: P = self.profiles[run.profile]
        self.fitted: FitResult | None = None  # the loop's record, when ``learn`` used the loop

    # --- every family supplies these ----------------------------------------------------------

    def load(self) -> None:
        """Read the data (and whatever else the run needs before it trains) onto ``self``."""
        raise NotImplementedError

    def graphs(self, model: Any) -> dict[str, Graph]:
        raise NotImplementedError

    def card(self, model: Any) -> dict[str, Any]:
        """The family's card sections; see the module's docstring for what the template adds."""
        raise NotImplementedError

    def evaluate(self, sessions: Sessions) -> dict[str, Any]:
        """The card's metrics, computed by running the exported graphs on the test split."""
        raise NotImplementedError

    def calibrate(self, sessions: Sessions) -> dict[str, Any]:
        """Card sections serving reads (intervals, temperature, novelty), from the served graphs."""
        return {}

    def drift_reference(self) -> dict[str, Any] | None:
        """What serving measures drift against (``training.drift``): the training features' or
        labels' distribution; None where there is none (the generators)."""
        return None

    # --- a network trained through the shared loop ---------------------------------------------

    def network(self) -> nn.Module:
        raise NotImplementedError

    def learning(self, model: nn.Module) -> Learning:
        raise NotImplementedError

    def batches(self) -> Iterable:
        """One epoch of batches."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def validate(self, model: nn.Module) -> float:
        """The score that selects the epoch: lower is better."""
        raise NotImplementedError

    # The learning curve's validation loss: ``validation_loss``, or the score when it is that loss.
    score_is_validation_loss: ClassVar[bool] = False

    def validation_loss(self, model: nn.Module) -> float:
        """The training loss on validation data, once an epoch, beside the training loss."""
        raise NotImplementedError

    def learn(self) -> tuple[Any, Cost]:
        """The trained model and what it cost."""
        model = self.network()
        how = self.learning(model)
        self.fitted = fit(model, self.batches, self.loss, self.validate, how.optimizer, epochs=self.config.epochs,
                          patience=how.patience, scheduler=how.scheduler, scheduler_per_batch=how.scheduler_per_batch,
                          checkpoint=self.run.checkpoint, extra_state=how.extra_state, desc=self.name,
                          threads=how.threads,
                          validation_loss="score" if self.score_is_validation_loss else self.validation_loss)
        return model, self.fitted

    def export(self, graphs: dict[str, Graph], card: dict[str, Any]) -> dict[str, Any]:
        return export_model(self.name, graphs, self.evaluate, card, self.run.out_root, calibrate=self.calibrate)


def train(recipe: type[Recipe], profile: str = "full", seed: int = 0, limit: int | None = None,
          out_root: Path | None = None, checkpoint: Path | None = None, eval_limit: int | None = None,
          **options: Any) -> dict[str, Any]:
    """Train, export and card one model of ``recipe``'s family; returns the card as written."""
    family = recipe(Run(profile, seed, limit, out_root or models_dir(), checkpoint, eval_limit), **options)
    seed_everything(seed)
    family.load()
    model, cost = family.learn()
    card = {"task": family.task, "profile": profile, "seed": seed, **family.card(model)}
    if family.fitted is not None:  # the family's own validation fields come after the loop's
        result = family.fitted
        card["validation"] = {family.score: result.best_score, "best_epoch": result.best_epoch,
                              "epochs_run": result.epochs_run, "history": result.history,
                              **card.get("validation", {})}
    card["training"] = cost.as_card()
    if (reference := family.drift_reference()) is not None:
        card["drift_reference"] = reference
    return family.export(family.graphs(model), card)
