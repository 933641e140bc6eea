"""The shared loop's checkpoints: an interrupted run resumes where it stopped, extra state included."""

from __future__ import annotations

import torch

from training import loop
from training.loop import fit


def _run(checkpoint, epochs: int):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    side = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # e.g. a GAN critic's optimizer
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    seen = []

    def step(m, batch):
        seen.append(1)
        side.param_groups[0]["params"][0].grad = torch.ones(1)
        side.step()
        return torch.nn.functional.mse_loss(m(batch[0]), batch[1])

    result = fit(model, lambda: [(x, y)], step, lambda m: float(torch.nn.functional.mse_loss(m(x), y)), optimizer,
                 epochs=epochs, checkpoint=checkpoint, extra_state={"side": side}, leave=False)
    return result, len(seen), side.state_dict()["state"][0]["step"]


def test_resume_continues_from_the_last_epoch_with_extra_state(tmp_path):
    checkpoint = tmp_path / "run.pt"
    first, _, _ = _run(checkpoint, epochs=2)
    result, steps_taken, side_steps = _run(checkpoint, epochs=3)
    assert result.epochs_run == 3 and len(result.history) == 3
    # The interrupted run's epochs, their recorded costs included, are the resumed run's first two:
    # the card's training cost (the sum over the history) counts the whole training.
    assert result.history[:2] == first.history
    assert all(set(loop.EPOCH_COSTS) <= set(epoch) for epoch in result.history)
    assert steps_taken == 1  # only the third epoch ran again
    assert float(side_steps) == 3.0  # the side optimizer's state came back from the checkpoint



def test_the_curve_records_a_validation_loss_only_when_told_which():
    """A recipe whose score is its validation loss says so ("score"); one without a loss records none."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    model = torch.nn.Linear(2, 1)

    def run(validation_loss):
        return fit(model, lambda: [(x, y)], lambda m, batch: torch.nn.functional.mse_loss(m(batch[0]), batch[1]),
                   lambda m: 0.5, torch.optim.SGD(model.parameters(), lr=0.01), epochs=2, leave=False,
                   validation_loss=validation_loss).history

    assert [epoch["val_loss"] for epoch in run("score")] == [0.5, 0.5]
    assert [epoch["val_loss"] for epoch in run(lambda m: 7.0)] == [7.0, 7.0]
    assert not any("val_loss" in epoch for epoch in run(None))
