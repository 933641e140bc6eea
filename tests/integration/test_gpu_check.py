"""``make gpu-check``: without a GPU it says so and measures nothing; its smoke mode runs every
step (parity, /v2 throughput with batching on and off, diffusion, memory) on the CPU."""

from __future__ import annotations

import json

from bench import gpu_check


def test_without_a_gpu_it_says_so_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gpu_check, "cuda_device_present", lambda: False)
    assert gpu_check.run(tmp_path / "models", tmp_path / "gpu.json", smoke=False) is None
    assert "no NVIDIA GPU" in capsys.readouterr().out and not (tmp_path / "gpu.json").exists()


def test_its_smoke_mode_runs_every_step_on_the_cpu(trained_models, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("mnist-cnn", "diffusion"):
        (models / name).symlink_to(trained_models / name)
    result = gpu_check.run(models, tmp_path / "gpu.json", smoke=True)
    assert json.loads((tmp_path / "gpu.json").read_text()) == result
    graphs = {(row["model"], row["graph"]) for row in result["parity"]}
    assert {("mnist-cnn", "model"), ("diffusion", "model"), ("diffusion", "step")} <= graphs
    assert all(row["max_abs_diff"] == 0.0 for row in result["parity"])  # the CPU provider against itself
    served = result["served"]
    assert set(served["v2"]) == {f"{kind}, batching {mode}" for kind in ("json", "binary") for mode in ("on", "off")}
    assert all(point["requests"] > 0 and point["failures"] == 0 for point in served["v2"].values())
    assert served["diffusion"]["status"] == 200 and served["diffusion"]["images_per_s"] > 0
