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
    _run(checkpoint, epochs=2)
    result, steps_taken, side_steps = _run(checkpoint, epochs=3)
    assert result.epochs_run == 3 and len(result.history) == 3
    assert steps_taken == 1  # only the third epoch ran again
    assert float(side_steps) == 3.0  # the side optimizer's state came back from the checkpoint


class TickingClock:
    """Stands in for the ``time`` module inside the loop: each reading is one tick later, so an
    epoch (read at its start and end) accounts for exactly one tick: bookkeeping, not speed."""

    def __init__(self) -> None:
        self.readings = {"perf_counter": 0, "process_time": 0}

    def __getattr__(self, name: str):
        def read() -> float:
            self.readings[name] += 1
            return float(self.readings[name])

        return read


def test_a_resumed_run_reports_the_epochs_its_predecessor_trained(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "time", TickingClock())
    checkpoint = tmp_path / "run.pt"
    _run(checkpoint, epochs=2)
    recorded = torch.load(checkpoint, weights_only=False)["loop"]
    result, _, _ = _run(checkpoint, epochs=3)
    assert (recorded["wall_seconds"], recorded["cpu_seconds"]) == (2.0, 2.0)  # one tick per epoch, two epochs
    assert (result.earlier_wall_seconds, result.earlier_cpu_seconds) == (2.0, 2.0)
