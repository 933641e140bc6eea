"""``make bench``: every side-by-side comparison in one run -> reports/bench.json and bench.md.

    python -m bench                      # all sections on models/
    python -m bench --only engines batching
    python -m bench --smoke              # tiny repeats: checks the harness, not the speed
    python -m bench.compare old.json new.json   # two runs' figures as ratios

The in-process sections (engines, diffusion, quantization) run with the same thread count on
both sides of each comparison; the HTTP sections start their own servers pinned to core 0 and
send from core 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import onnxruntime as ort
import torch

from serving.repository.sessions import cuda_device_present

from . import (batching, cold_start, diffusion_speed, digit_classifiers, engines, explanations, floor, load_cycles,
               overhead, prediction_log, quantization, served_accuracy, zoo_memory)
from .common import Context, cpu_jiffies, steal_share

SECTIONS = {"engines": engines, "diffusion": diffusion_speed, "quantization": quantization,
            "overhead": overhead, "batching": batching, "cold-start": cold_start,
            "digit-classifiers": digit_classifiers, "floor": floor, "served-accuracy": served_accuracy,
            "explanations": explanations, "load-cycles": load_cycles, "prediction-log": prediction_log,
            "memory": zoo_memory}
REPO = Path(__file__).resolve().parents[1]


def machine() -> dict[str, object]:
    """What the figures were measured on: they mean little without it."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("flags")), []) if cpuinfo.exists() else []
    return {"cpu": names[0] if names else platform.processor(), "cores": os.cpu_count(),
            # What ONNX Runtime and PyTorch pick kernels by: AVX-512, VNNI, bf16 units, AMX.
            "cpu_flags": sorted(flags),
            "python": platform.python_version(), "onnxruntime": ort.__version__, "torch": torch.__version__,
            "gpu": gpu_name()}


def gpu_name() -> str:
    """The NVIDIA GPU the driver exposes (its model line), or "none"."""
    if not cuda_device_present():
        return "none"
    informations = sorted(Path("/proc/driver/nvidia/gpus").glob("*/information"))
    lines = [line for path in informations for line in path.read_text().splitlines() if line.startswith("Model:")]
    return lines[0].split(":", 1)[1].strip() if lines else "an NVIDIA GPU (model not reported)"


def _quietness(share: float | None) -> str:
    if share is None:
        return ""
    return (f"\n\nThe hypervisor took {share:.1%} of this machine's CPU time during this section (steal): "
            "a shared host's neighbours slow some rounds more than others.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("ZOOSERVE_MODELS_DIR", "models")))
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--smoke", action="store_true", help="tiny repeats and sizes")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for both engines")
    parser.add_argument("--out", type=Path, default=REPO / "reports")
    args = parser.parse_args(argv)

    ctx = Context.create(args.models_dir, args.smoke, args.threads)
    report = {"machine": machine(), "smoke": args.smoke, "threads": args.threads,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sections": {}}
    sections = []
    for name in args.only:
        started = time.perf_counter()
        print(f"bench: {name} ...", flush=True)
        before = cpu_jiffies()
        result = SECTIONS[name].run(ctx)
        result["host_steal_share"] = steal_share(before, cpu_jiffies())
        report["sections"][name] = result
        sections.append(SECTIONS[name].markdown(result) + _quietness(result["host_steal_share"]))
        print(f"bench: {name} done in {time.perf_counter() - started:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    # Every run kept under its time, for ``python -m bench.compare`` against any earlier one.
    runs = args.out / "bench-runs"
    runs.mkdir(exist_ok=True)
    (runs / f"bench-{report['measured_at'].replace(':', '')}.json").write_text(json.dumps(report, indent=2) + "\n")
    header = (f"## Benchmarks\n\nMeasured {report['measured_at']} on {report['machine']['cpu']} "
              f"({report['machine']['cores']} cores, no GPU), ONNX Runtime {report['machine']['onnxruntime']}, "
              f"PyTorch {report['machine']['torch']}, {args.threads} intra-op thread(s) per engine"
              f"{' (SMOKE: tiny repeats, not figures)' if args.smoke else ''}.\n")
    (args.out / "bench.md").write_text("\n\n".join([header, *sections]) + "\n")
    print((args.out / "bench.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
