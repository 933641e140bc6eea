"""Whether an int8 copy answers the same on a CPU without VNNI: the digit CNN quantised with
full-range int8 weights and with 7-bit weights (``reduce_range``, what the export step ships), each
run here and under QEMU emulating an AVX2-only AMD EPYC (Rome: no AVX-512, no VNNI), where ONNX
Runtime's uint8 x int8 kernel uses VPMADDUBSW and its 16-bit sums can saturate.

    python -m bench.int8_portability [--models-dir models] [--cpu EPYC-Rome]
    -> reports/int8-portability.json

Needs ``qemu-x86_64`` (Debian's qemu-user). Emulation is slow: 256 test digits take a minute or two.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from serving.repository import layout, variants
from training.data import mnist_arrays
from training.mnist import normalize
from training.quantize import write_int8_qdq

REPO = Path(__file__).resolve().parents[1]
ROWS, CALIBRATION = 256, 200
# Runs under QEMU: only NumPy and ONNX Runtime, one thread (the emulated CPU's kernels are the point).
RUNNER = """
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions(); options.intra_op_num_threads = 1
data = np.load(sys.argv[1])
out = {}
for path in sys.argv[3:]:
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    out[path] = session.run(None, {"image": data["image"]})[0]
np.savez(sys.argv[2], **{str(i): out[p] for i, p in enumerate(sys.argv[3:])})
"""


def run(models_dir: Path, cpu: str) -> dict:
    train_images, _ = mnist_arrays(train=True)
    test_images, _ = mnist_arrays(train=False)
    inputs = normalize(test_images[:ROWS])
    with tempfile.TemporaryDirectory(prefix="zooserve-int8-cpus-") as scratch_dir:
        scratch = Path(scratch_dir)
        source = layout.newest(models_dir / "mnist-cnn") / "model.onnx"
        graphs = {"full-range int8 weights": scratch / "full.onnx", "7-bit weights (reduce_range, shipped)":
                  scratch / "reduced.onnx"}
        for (name, path), reduce in zip(graphs.items(), (False, True)):
            write_int8_qdq(source, path, "image", normalize(train_images[-CALIBRATION:]), reduce_range=reduce)
        fp32 = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, {"image": inputs})[0]
        np.savez(scratch / "inputs.npz", image=inputs)
        subprocess.run(["qemu-x86_64", "-cpu", cpu, sys.executable, "-c", RUNNER, str(scratch / "inputs.npz"),
                        str(scratch / "emulated.npz"), *map(str, graphs.values())], check=True, cwd=REPO)
        emulated = np.load(scratch / "emulated.npz")
        rows = {}
        for index, (name, path) in enumerate(graphs.items()):
            here = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": inputs})[0]
            there = emulated[str(index)]
            tolerance = variants.tie_tolerance(here, fp32)
            rows[name] = {
                "max_abs_diff_between_cpus": float(np.abs(here - there).max()),
                "top1_differs_between_cpus": int((here.argmax(1) != there.argmax(1)).sum()),
                "agreement_with_fp32_here": variants.agreement(here, fp32, tolerance).as_card(),
                f"agreement_with_fp32_on_{cpu}": variants.agreement(there, fp32, tolerance).as_card(),
            }
    return {"rows": ROWS, "emulated_cpu": cpu, "host_cpu_flags": _flags(), "graphs": rows}


def _flags() -> list[str]:
    wanted = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile"}
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    return sorted(wanted & set(flags))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--cpu", default="EPYC-Rome", help="QEMU's CPU model to emulate")
    args = parser.parse_args(argv)
    if shutil.which("qemu-x86_64") is None:
        print("error: qemu-x86_64 not found (apt-get install qemu-user)", file=sys.stderr)
        return 2
    result = run(args.models_dir, args.cpu)
    out = REPO / "reports" / "int8-portability.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
