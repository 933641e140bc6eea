"""Prometheus metrics beyond BentoML's request counts: per-model inference time, batch size and
the loaded models and the version each serves by default.

Created on first use, not at import: BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` in each worker
after importing the service module, and metrics created before that would never reach /metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

INFERENCE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Metrics:
    inference_seconds: object
    batch_size: object
    model_loaded: object
    model_version: object


@cache
def metrics() -> Metrics:
    import prometheus_client as prom

    return Metrics(
        inference_seconds=prom.Histogram("zooserve_inference_seconds", "ONNX Runtime call alone, per graph",
                                         ["model", "graph"], buckets=INFERENCE_BUCKETS),
        batch_size=prom.Histogram("zooserve_batch_size", "rows per ONNX Runtime call", ["model", "graph"],
                                  buckets=BATCH_BUCKETS),
        # The last value any worker set: the workers follow the API worker's changes (a rollback
        # lowers the version, an unload zeroes the count), and "max" would keep the old value.
        model_loaded=prom.Gauge("zooserve_model_loaded", "versions of each model loaded (0: unloaded)",
                                ["model", "providers"], multiprocess_mode="mostrecent"),
        model_version=prom.Gauge("zooserve_model_version", "the version requests naming none get (its publish "
                                 "number; 0: none loaded, or a model exported before versions)", ["model"],
                                 multiprocess_mode="mostrecent"),
    )
