"""Prometheus metrics beyond BentoML's request counts: per-model inference time, batch size, the
loaded models and the version each serves by default, and the prediction log's records.

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
    prediction_log: object
    drift_psi: object
    ood_flag_rate: object
    drift_window_items: object


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
        prediction_log=prom.Counter("zooserve_prediction_log_records", "answers the prediction log wrote, or dropped "
                                    "(dropped_queue_full: the writer fell behind; dropped_database: it was down)",
                                    ["outcome"]),
        # Set by the API worker alone (serving.monitoring.drift), over its rolling window.
        drift_psi=prom.Gauge("zooserve_drift_psi", "population stability index of a feature (or of the predicted "
                             "classes: feature=\"predicted_class\") over the drift window, against training",
                             ["model", "feature"], multiprocess_mode="mostrecent"),
        ood_flag_rate=prom.Gauge("zooserve_ood_flag_rate", "share of the drift window's items flagged out of "
                                 "distribution", ["model"], multiprocess_mode="mostrecent"),
        drift_window_items=prom.Gauge("zooserve_drift_window_items", "items in the drift window (up to "
                                      "ZOOSERVE_DRIFT_WINDOW)", ["model"], multiprocess_mode="mostrecent"),
    )
