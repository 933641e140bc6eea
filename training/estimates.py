"""How long each model takes to train on the machine at hand.

The seconds below were measured on one reference machine (2 idle cores of an AMD EPYC with AVX-512
and bf16 units). A short probe at the start of ``python -m training`` times the same kinds of work
here: training steps of the digit CNN, of the diffusion U-Net at the precision it will train with
(``precision``: bf16 only with bf16 units), and NumPy's BLAS and sorting for the scikit-learn and
gradient-boosting models. Each model's estimate is its reference seconds scaled by its kind's
probe ratio, so a CPU without bf16 units is told the diffusion model takes minutes more, and a
busy machine is told it is busy.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .loop import torch_threads
from .precision import choose

# Wall seconds per model on the reference machine: the quick profiles as a first run trains them
# (``python -m bench.first_run``: fastest first, beside the starting server), the full ones one by
# one on an idle machine (README, "Training").
# The diffusion model's training (U-Net steps) and evaluation (1,000 or 10,000 samples drawn through
# ONNX Runtime, whatever the training's precision) scale apart.
REFERENCE_SECONDS: dict[str, dict[str, float | dict[str, float]]] = {
    "quick": {"house-price-gbm": 13, "house-price-mlp": 7, "mnist-cnn": 51, "mnist-logreg": 24, "mnist-knn": 10,
              "mnist-tree": 4, "mnist-forest": 12, "transfer-cnn": 41, "passengers": 6, "vae": 34, "gan": 39,
              "vae-conditional": 36, "gan-conditional": 47, "gan-wgan-gp": 45, "diffusion": {"unet": 166, "cnn": 93}},
    "full": {"house-price-gbm": 50, "house-price-mlp": 200, "mnist-cnn": 460, "mnist-logreg": 200, "mnist-knn": 120,
             "mnist-tree": 45, "mnist-forest": 60, "transfer-cnn": 120, "passengers": 21, "vae": 1150, "gan": 3700,
             "vae-conditional": 1000, "gan-conditional": 3700, "gan-wgan-gp": 3700,
             "diffusion": {"unet": 2400, "cnn": 1200}},
}
# The first digit classifier a run trains also puts the 10,000 test digits through the upload
# preprocessing, which the others then reuse (``mnist._uploaded``): seconds of NumPy it adds.
DIGIT_CLASSIFIERS = ("mnist-cnn", "mnist-logreg", "mnist-knn", "mnist-tree", "mnist-forest")
TEST_DIGITS_SECONDS = 12
# The work each model's time is mostly made of: its probe.
KIND = {"house-price-gbm": "numpy", "mnist-logreg": "numpy", "mnist-knn": "numpy", "mnist-tree": "numpy",
        "mnist-forest": "numpy"}  # every other model: "cnn" (PyTorch and ONNX Runtime, fp32)
# Median seconds of one probe step on the reference machine, idle (``python -m training.estimates``).
REFERENCE_PROBE = {"cnn": 0.055, "unet": 0.035, "numpy": 0.009}
PROBE_STEPS = 5


def _median_seconds(step: Callable[[], object], steps: int = PROBE_STEPS) -> float:
    step()  # the first call pays for allocation and kernel selection
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _training_step(network: torch.nn.Module, loss: Callable[[], torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    return step


def probe() -> dict[str, float]:
    """Median seconds of one step of each kind of work on this machine now (about a second in all)."""
    from .diffusion import PROFILES as DIFFUSION, UNet
    from .mnist import DigitCNN

    torch.manual_seed(0)
    digits, labels = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    cnn = DigitCNN().train()
    quick = DIFFUSION["quick"]
    unet, precision = UNet(quick.base_channels).train(), choose(quick.bf16)
    noisy, t = torch.randn(quick.batch_size, 1, 28, 28), torch.randint(0, 1000, (quick.batch_size,))

    def unet_loss() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.bf16):
            return unet(noisy, t, labels[:quick.batch_size]).float().pow(2).mean()

    rng = np.random.default_rng(0)
    matrix, values = rng.standard_normal((500, 500)), rng.standard_normal(1_000_000)
    with torch_threads(quick.threads):
        return {"cnn": _median_seconds(_training_step(cnn, lambda: F.cross_entropy(cnn(digits)[0], labels))),
                "unet": _median_seconds(_training_step(unet, unet_loss)),
                "numpy": _median_seconds(lambda: (matrix @ matrix, np.sort(values)))}


def scaled(profile: str, measured: dict[str, float]) -> dict[str, float]:
    """Each model's estimated seconds here: its reference seconds times its kind's probe ratio."""
    def here(name: str, reference: float | dict[str, float]) -> float:
        parts = reference if isinstance(reference, dict) else {KIND.get(name, "cnn"): reference}
        return sum(seconds * measured[kind] / REFERENCE_PROBE[kind] for kind, seconds in parts.items())

    return {name: here(name, reference) for name, reference in REFERENCE_SECONDS[profile].items()}


def in_run_order(estimates: dict[str, float], measured: dict[str, float]) -> dict[str, float]:
    """``estimates`` of the models in the order they will train, the first digit classifier's with
    the test digits' preparation added."""
    first = next((name for name in estimates if name in DIGIT_CLASSIFIERS), None)
    extra = TEST_DIGITS_SECONDS * measured["numpy"] / REFERENCE_PROBE["numpy"]
    return {name: seconds + (extra if name == first else 0.0) for name, seconds in estimates.items()}


if __name__ == "__main__":  # what REFERENCE_PROBE holds, measured on the machine at hand
    print({kind: round(seconds, 5) for kind, seconds in probe().items()})
