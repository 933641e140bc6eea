"""The shared loop's checkpoints: an interrupted run resumes where it stopped, extra state included."""

from __future__ import annotations

from types import SimpleNamespace

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


class _TickingClock:
    """A clock that moves one second per reading: each epoch costs exactly one "second"."""

    def __init__(self) -> None:
        self.now = 0.0

    def tick(self) -> float:
        self.now += 1.0
        return self.now


def test_resume_continues_from_the_last_epoch_with_extra_state(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=_TickingClock().tick,
                                                      process_time=_TickingClock().tick))
    checkpoint = tmp_path / "run.pt"
    first, _, _ = _run(checkpoint, epochs=2)
    result, steps_taken, side_steps = _run(checkpoint, epochs=3)
    assert result.epochs_run == 3 and len(result.history) == 3
    assert first.as_card()["wall_seconds"] == 2.0  # two epochs of the interrupted run
    assert result.as_card() == {"wall_seconds": 3.0, "cpu_seconds": 3.0, "device": "cpu"}  # its epochs carried on
    assert steps_taken == 1  # only the third epoch ran again
    assert float(side_steps) == 3.0  # the side optimizer's state came back from the checkpoint

