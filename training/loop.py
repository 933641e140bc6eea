"""The training loop every PyTorch family shares: epochs, early stopping, checkpoints, progress.

A family supplies the network, the loss (``step``) and the validation score; this loop owns the
rest so that early stopping, resumption after an interruption and the progress bar behave the
same for a 10-second MLP and an hour-long diffusion model.
"""

from __future__ import annotations

import copy
import random
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

import numpy as np
import torch
from tqdm import tqdm


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block on ``count`` intra-op threads. Tiny networks want one: their thread hand-offs
    cost more than the maths, about ten times more when other work shares the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


EPOCH_COSTS = ("wall_seconds", "cpu_seconds")


@dataclass
class FitResult:
    best_score: float
    best_epoch: int
    epochs_run: int
    # One entry per epoch, an interrupted predecessor's included (the checkpoint keeps them), each
    # with its wall-clock and process CPU seconds: the card states the whole training's cost.
    history: list[dict[str, float]] = field(default_factory=list)

    def as_card(self) -> dict[str, Any]:
        return FitResult.total_card([self])

    @staticmethod
    def total_card(results: Iterable[FitResult]) -> dict[str, Any]:
        """The card's training cost of one fit or an ensemble's: every epoch of every fit added up
        (checkpoints written before epochs were timed carry no cost for their epochs)."""
        epochs = [epoch for result in results for epoch in result.history]
        return {key: round(sum(epoch.get(key, 0.0) for epoch in epochs), 2) for key in EPOCH_COSTS} | {"device": "cpu"}


@dataclass
class Fits:
    """Several fits' cost as one training's (an ensemble's members)."""

    results: list[FitResult]

    def as_card(self) -> dict[str, Any]:
        return FitResult.total_card(self.results)


def fit(
    model: torch.nn.Module,
    batches: Callable[[], Iterable],
    step: Callable[[torch.nn.Module, object], torch.Tensor],
    validate: Callable[[torch.nn.Module], float],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    validation_loss: Callable[[torch.nn.Module], float] | Literal["score"] | None = None,
    patience: int | None = None,
    scheduler=None,
    scheduler_per_batch: bool = False,
    checkpoint: Path | None = None,
    extra_state: dict[str, Any] | None = None,
    desc: str = "train",
    leave: bool = True,
    threads: int | None = None,
) -> FitResult:
    """Train ``model`` and leave it holding the weights of its best validation epoch.

    ``batches()`` yields one epoch of batches; ``step(model, batch)`` returns the loss to
    minimise; ``validate(model)`` returns a score where lower is better; ``validation_loss(model)``
    the training loss on the validation data, for the learning curve ("score": the score is that
    loss; None: not recorded). With ``checkpoint``
    set, the full state is saved after every epoch and a later call resumes from it;
    ``extra_state`` names what else a resumed run needs (objects with ``state_dict`` and
    ``load_state_dict``, e.g. a GAN critic's own optimizer that ``step`` drives). The checkpoint
    also keeps the epochs' wall and CPU time, so a resumed run reports what the interrupted
    processes spent too. ``threads``: torch's intra-op threads while training (default: as set).
    """
    with torch_threads(threads) if threads else nullcontext():
        return _fit(model, batches, step, validate, optimizer, epochs=epochs, patience=patience, scheduler=scheduler,
                    scheduler_per_batch=scheduler_per_batch, checkpoint=checkpoint, extra_state=extra_state or {},
                    desc=desc, leave=leave, validation_loss=validation_loss)


def _fit(model, batches, step, validate, optimizer, *, epochs, patience, scheduler, scheduler_per_batch, checkpoint,
         extra_state, desc, leave, validation_loss) -> FitResult:
    state = {"epoch": 0, "best_score": float("inf"), "best_epoch": 0, "best_weights": None, "history": []}
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        for key, value in extra_state.items():
            value.load_state_dict(saved["extra"][key])
        state = saved["loop"]
        torch.set_rng_state(saved["torch_rng"])
        print(f"{desc}: resumed from {checkpoint} after epoch {state['epoch']}")

    progress = tqdm(range(state["epoch"], epochs), desc=desc, unit="epoch", initial=state["epoch"], total=epochs,
                    leave=leave)
    for epoch in progress:
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        model.train()
        losses = []
        # Batch progress too: a quick profile's single epoch would otherwise show nothing for a minute.
        for batch in tqdm(batches(), desc=f"{desc} epoch {epoch + 1}", unit="batch", leave=False, mininterval=1.0):
            loss = step(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None and scheduler_per_batch:
                scheduler.step()
            losses.append(loss.item())
        if scheduler is not None and not scheduler_per_batch:
            scheduler.step()
        model.eval()
        with torch.no_grad():
            score = float(validate(model))
            losses_on_validation = ({} if validation_loss is None else
                                    {"val_loss": score if validation_loss == "score" else float(validation_loss(model))})
        if score < state["best_score"]:
            state.update(best_score=score, best_epoch=epoch + 1, best_weights=copy.deepcopy(model.state_dict()))
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), **losses_on_validation,
                                 "val_score": score,
                                 "wall_seconds": time.perf_counter() - started_wall,
                                 "cpu_seconds": time.process_time() - started_cpu})
        progress.set_postfix(loss=f"{np.mean(losses):.4f}", val=f"{score:.4f}", best=f"{state['best_score']:.4f}")
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "extra": {key: value.state_dict() for key, value in extra_state.items()},
                        "loop": state, "torch_rng": torch.get_rng_state()}, checkpoint)
        if patience is not None and epoch + 1 - state["best_epoch"] >= patience:
            progress.write(f"{desc}: early stop at epoch {epoch + 1}, best epoch {state['best_epoch']}")
            break
    progress.close()
    if state["best_weights"] is not None:
        model.load_state_dict(state["best_weights"])
    model.eval()
    return FitResult(state["best_score"], state["best_epoch"], state["epoch"], state["history"])
