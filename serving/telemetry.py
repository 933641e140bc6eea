"""Prometheus metrics beyond BentoML's request counts: per-model inference time, batch size and
the loaded models with their versions.

Created on first use, not at import: BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` in each worker
after importing the service module, and metrics created before that would never reach /metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

INFERENCE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Metrics:
    inference_seconds: object
    batch_size: object
    model_loaded: object


@cache
def metrics() -> Metrics:
    import prometheus_client as prom

    return Metrics(
        inference_seconds=prom.Histogram("zooserve_inference_seconds", "ONNX Runtime call alone, per graph",
                                         ["model", "graph"], buckets=INFERENCE_BUCKETS),
        batch_size=prom.Histogram("zooserve_batch_size", "rows per ONNX Runtime call", ["model", "graph"],
                                  buckets=BATCH_BUCKETS),
        model_loaded=prom.Gauge("zooserve_model_loaded", "1 for each model this server loaded",
                                ["model", "version", "providers"], multiprocess_mode="max"),
    )


_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def cache_metrics_pid() -> None:
    """Make multiprocess metrics look the process id up once, not on every update.

    prometheus_client's multiprocess values call ``os.getpid()`` on every increment and
    observation to notice a fork; a ``/house-price/predict`` request made ten such system calls
    (``strace -c`` on the API worker under load), a few percent of its CPU. The replacement takes
    the id from a cache that ``os.register_at_fork`` refreshes in a forked child, which is what
    the check is for. Swapped only while no value exists yet: values of two classes would write
    the same files."""
    from prometheus_client import values

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or not _no_values_yet(values.ValueClass):
        return
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: _PID[0])


def _no_values_yet(value_class: type) -> bool:
    init = getattr(value_class, "__init__", None)
    code = getattr(init, "__code__", None)
    if code is None or "values" not in code.co_freevars:
        return False  # not the multiprocess class this was written against
    return not init.__closure__[code.co_freevars.index("values")].cell_contents
