"""Reduced precision where the CPU runs it natively, never by assumption.

bfloat16 autocast made the diffusion U-Net's training steps 2.4x faster on a CPU with AVX-512 bf16
units, and 8x slower on an AVX2 CPU without them, where PyTorch emulates bf16 (1.78 against 14.1
steps per second). PyTorch's own ``mkldnn`` bf16 check answers yes for any AVX-512 CPU, emulation
included, so the choice asks for the units themselves: AVX512-BF16 or AMX. Training runs on the
CPU only; a GPU path would need its own check (``torch.cuda.is_bf16_supported``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

OVERRIDE = "ZOOSERVE_TRAIN_BF16"  # auto (the capability decides), on or off: to measure either path


def bf16_units() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 dot products or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


@dataclass(frozen=True)
class Precision:
    """The precision a training runs at and why: what its card records."""

    bf16: bool
    bf16_units: bool
    reason: str

    @property
    def autocast(self) -> str:
        return "bfloat16" if self.bf16 else "none"

    def as_card(self) -> dict[str, object]:
        return {"autocast": self.autocast, "bf16_units": self.bf16_units, "reason": self.reason}


def choose(wanted: bool, units: bool | None = None) -> Precision:
    """bf16 autocast when the profile asks for it and the CPU has the units (or ``ZOOSERVE_TRAIN_BF16``
    says so), else fp32."""
    units = bf16_units() if units is None else units
    override = os.environ.get(OVERRIDE, "auto").strip().lower() or "auto"
    if override not in ("auto", "on", "off"):
        raise ValueError(f"{OVERRIDE} must be auto, on or off, got {override!r}")
    if not wanted:
        return Precision(False, units, "the profile trains in fp32")
    if override != "auto":
        return Precision(override == "on", units, f"{OVERRIDE}={override}")
    if units:
        return Precision(True, units, "the CPU has bf16 units (AVX512-BF16 or AMX): bf16 autocast is faster here")
    return Precision(False, units, "the CPU has no bf16 units: PyTorch would emulate bf16, several times "
                                   "slower than fp32")
