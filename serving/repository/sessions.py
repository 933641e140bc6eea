"""The one place that builds ONNX Runtime sessions: execution providers, threads, optimisation."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnxruntime as ort

from serving.settings import Settings

logger = logging.getLogger("bentoml.zooserve")  # a child of BentoML's logger shares its handlers
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# A run with these gives the CPU arena's growth back when it ends, instead of keeping that peak for
# the process's life: for one-off large runs, such as a variant's check rows at start-up (the
# transfer CNN's 16 check photos left 50 MB in the arena, 9 MB with this).
SHRINK_ARENA = ort.RunOptions()
SHRINK_ARENA.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


def cuda_device_present() -> bool:
    """A GPU the driver exposes. onnxruntime-gpu lists CUDA as available even on CPU-only hosts,
    so the provider list alone cannot tell; asking for CUDA without a device only adds noise."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return Path("/dev/nvidia0").exists() or (gpus.is_dir() and any(gpus.iterdir()))


def providers_for(settings: Settings, available: list[str] | None = None, gpu: bool | None = None) -> list:
    """Providers in priority order for the configured device (``auto``: CUDA only with a GPU)."""
    available = ort.get_available_providers() if available is None else available
    gpu = cuda_device_present() if gpu is None else gpu
    if settings.device == "cpu":
        return [CPU]
    if settings.device == "cuda" and (CUDA not in available or not gpu):
        raise RuntimeError("ZOOSERVE_DEVICE=cuda but no CUDA device/provider is available "
                           f"(providers: {available}, GPU present: {gpu})")
    if CUDA in available and gpu:
        return [(CUDA, {"device_id": settings.device_id}), CPU]
    return [CPU]


def batching_pays(settings: Settings) -> bool:
    """Whether the classifiers should go through adaptive batching. On a GPU one call of 64 costs
    about what one call of 1 does, so joining requests multiplies throughput; on this project's
    CPU the model is a small part of a request and the hop to the batching service costs more
    than batching saves (``make bench``: half the throughput at 32 clients), so ``auto`` batches
    only where CUDA runs the models."""
    if settings.batching != "auto":
        return settings.batching == "on"
    return providers_for(settings)[0] != CPU


def check_providers(requested: list, active: list[str], path: Path) -> None:
    """Refuse a silent fall-back to CPU: ONNX Runtime drops CUDA without an error when its
    libraries do not load (a known failure in containers)."""
    if requested and requested[0] != CPU and active[0] != CUDA:
        raise RuntimeError(f"{path}: CUDA was requested but ONNX Runtime runs on {active}; check that the CUDA "
                           "and cuDNN libraries load (onnxruntime-gpu[cuda,cudnn] or a CUDA base image)")


def cores_available() -> int:
    """Cores this process may run on (its CPU affinity: ``taskset``, a container's cpuset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def session_options(settings: Settings,
                    optimization: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    ) -> ort.SessionOptions:
    """Threads and graph optimisation as the service runs them (``make bench`` times other levels)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = optimization
    # ONNX Runtime's own default is one thread per physical core with each thread pinned by itself,
    # which escapes the process's affinity: a server pinned to core 0 had a second inference thread
    # spinning on core 1 (0.14 ms of that core per house-price request, measured with
    # ``bench.floor``). Zero here means one thread per core the process may use.
    options.intra_op_num_threads = settings.intra_op_threads or cores_available()
    options.inter_op_num_threads = settings.inter_op_threads
    options.log_severity_level = 3  # errors only: keep warnings about unused initializers out of logs
    return options


def make_session(path: Path, settings: Settings) -> ort.InferenceSession:
    options = session_options(settings)
    providers = providers_for(settings)
    if providers[0] != CPU:
        ort.preload_dlls()  # CUDA/cuDNN from pip packages, when installed, before the session needs them
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    check_providers(providers, session.get_providers(), path)
    return session
