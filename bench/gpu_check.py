"""The GPU path measured in one process, in minutes, the first time a GPU machine is at hand.

    python -m bench.gpu_check [--models-dir models] [--out reports/gpu.json] [--smoke]
    make gpu-check

On a machine with an NVIDIA GPU (the driver exposes a device, and ONNX Runtime has its CUDA
provider) it measures, and writes to ``reports/gpu.json``:

- **parity**: every graph of every model in the models directory, run by the CUDA provider and by
  the CPU provider on the same random inputs: the largest difference, absolute and relative to the
  CPU output's largest value;
- **/v2 throughput**: ``mnist-cnn`` with its tensor as JSON and as binary data (the protocol's
  binary extension), 32 clients, with adaptive batching on and off (``ZOOSERVE_BATCHING``);
- **diffusion**: images per second of ``POST /generate/diffusion`` (16 digits, 50 steps);
- **GPU memory** (``nvidia-smi``) after the server has loaded its models and after 1,000 requests.

Without a GPU it says why, writes nothing and exits 0. ``--smoke`` runs every step on the CPU with
tiny loads, so the suite checks the script itself on any machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np
import onnxruntime as ort

from loadtests.server import REPO
from serving.repository.registry import read_card
from serving.repository.layout import model_names, newest
from serving.repository.sessions import cuda_device_present, make_session
from serving.settings import Settings

from .common import Context
from .floor import v2_json_body
from .http_load import closed_loop, serve_models

CUDA = "CUDAExecutionProvider"
CLIENTS = 32
MEMORY_REQUESTS = 1000
DIFFUSION = {"n": 16, "steps": 50, "seed": 0, "format": "json"}
INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def gpu_missing() -> str | None:
    """Why this machine cannot run the GPU path (None: it can)."""
    if not cuda_device_present():
        return "no NVIDIA GPU: the driver exposes no device (/dev/nvidia0, /proc/driver/nvidia/gpus)"
    if CUDA not in ort.get_available_providers():
        return f"ONNX Runtime {ort.__version__} has no CUDA provider (install onnxruntime-gpu)"
    return None


def random_feeds(session: ort.InferenceSession, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs of the graph's shapes and types: a free dimension is ``batch``; integer inputs (a
    timestep, a label, a cluster) are 0, a valid index for every graph that takes one."""
    feeds = {}
    for spec in session.get_inputs():
        shape = [dim if isinstance(dim, int) else batch for dim in spec.shape]
        integer = INT_TYPES.get(spec.type)
        feeds[spec.name] = (np.zeros(shape, integer) if integer is not None
                            else rng.standard_normal(shape).astype(np.float32))
    return feeds


def parity(models_dir: Path, device: str) -> list[dict[str, Any]]:
    """Each graph on ``device`` against the CPU provider, on the same inputs."""
    rng, rows = np.random.default_rng(0), []
    for name in model_names(models_dir):
        folder = newest(models_dir / name)
        for role, graph in read_card(folder).graphs.items():
            path = folder / graph.file
            cpu = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            other = make_session(path, Settings(models_dir=models_dir, device=device))
            feeds = random_feeds(cpu, 4, rng)
            worst_abs = worst_rel = 0.0
            for expected, got in zip(cpu.run(None, feeds), other.run(None, feeds)):
                expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
                difference = float(np.max(np.abs(expected - got))) if expected.size else 0.0
                worst_abs = max(worst_abs, difference)
                worst_rel = max(worst_rel, difference / max(float(np.max(np.abs(expected))) if expected.size else 0.0,
                                                            1e-12))
            rows.append({"model": name, "graph": role, "providers": other.get_providers(),
                         "max_abs_diff": worst_abs, "max_rel_diff": worst_rel})
    return rows


def _infer_sender(binary: bool) -> Callable[[httpx.Client, int], httpx.Response]:
    image = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)
    if binary:
        header = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                         "parameters": {"binary_data_size": image.nbytes}}]}).encode()
        body = header + image.tobytes()
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
    else:
        body, headers = v2_json_body("image", image), {"Content-Type": "application/json"}
    return lambda client, _number: client.post("/v2/models/mnist-cnn/infer", content=body, headers=headers)


def gpu_memory_mb() -> list[float] | None:
    """Memory in use on each GPU, as ``nvidia-smi`` reads it (None without it)."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30, check=False).stdout
    return [float(line) for line in out.split() if line.strip()]


def served_figures(ctx: Context, device: str) -> dict[str, Any]:
    """/v2 throughput with batching on and off, diffusion images/s, GPU memory: one server per mode."""
    seconds = 0.5 if ctx.smoke else 10.0
    requests = 20 if ctx.smoke else MEMORY_REQUESTS
    diffusion = {**DIFFUSION, "n": 2, "steps": 2} if ctx.smoke else DIFFUSION
    figures: dict[str, Any] = {"clients": CLIENTS, "seconds": seconds, "v2": {}}
    with tempfile.TemporaryDirectory() as logs:
        for batching in ("on", "off"):
            with serve_models(ctx, Path(logs) / f"gpu-{batching}.log", ZOOSERVE_DEVICE=device,
                              ZOOSERVE_BATCHING=batching) as url:
                if batching == "on":
                    figures["gpu_memory_mb_after_load"] = gpu_memory_mb()
                senders = {binary: _infer_sender(binary) for binary in (False, True)}
                for kind, binary in (("json", False), ("binary", True)):
                    send = senders[binary]
                    closed_loop(url, send, clients=4, seconds=seconds / 5)  # warm-up
                    figures["v2"][f"{kind}, batching {batching}"] = closed_loop(url, send, CLIENTS, seconds)
                if batching == "on":
                    with httpx.Client(base_url=url, timeout=120) as client:
                        for number in range(requests):
                            senders[number % 2 == 1](client, number)
                        figures["gpu_memory_mb_after_requests"] = {"requests": requests, "mb": gpu_memory_mb()}
                        client.post("/generate/diffusion", json={**diffusion, "n": 1})  # warm-up
                        started = time.perf_counter()
                        answer = client.post("/generate/diffusion", json=diffusion)
                        elapsed = time.perf_counter() - started
                    figures["diffusion"] = {**diffusion, "status": answer.status_code, "seconds": elapsed,
                                            "images_per_s": diffusion["n"] / elapsed}
    return figures


def run(models_dir: Path, out: Path, smoke: bool) -> dict[str, Any] | None:
    missing = None if smoke else gpu_missing()
    if missing is not None:
        print(f"gpu-check: {missing}; nothing measured.")
        return None
    device = "cpu" if smoke else "cuda"
    started = time.perf_counter()
    result = {"device": device, "smoke": smoke, "onnxruntime": ort.__version__,
              "parity": parity(models_dir, device),
              "served": served_figures(Context.create(models_dir, smoke, threads=1), device)}
    result["seconds"] = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    worst = max((row["max_rel_diff"] for row in result["parity"]), default=0.0)
    print(f"gpu-check: {len(result['parity'])} graphs, worst relative difference {worst:.2e}; "
          f"{result['seconds']:.0f} s; written to {out}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "gpu.json")
    parser.add_argument("--smoke", action="store_true", help="every step on the CPU, tiny loads (the suite's check)")
    args = parser.parse_args(argv)
    run(args.models_dir, args.out, args.smoke)


if __name__ == "__main__":
    main()
