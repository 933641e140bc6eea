"""Every ``ZOOSERVE_*`` environment variable, read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Device = Literal["auto", "cpu", "cuda"]
Switch = Literal["auto", "on", "off"]


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ValueError(f"{name} must be {', '.join(choices[:-1])} or {choices[-1]}, got {raw!r}")
    return raw


def _pairs(name: str) -> tuple[tuple[str, str], ...]:
    """``model=version,model=version`` as pairs."""
    pairs = []
    for item in _list(name):
        model, equals, version = item.partition("=")
        if not (equals and model.strip() and version.strip()):
            raise ValueError(f"{name} must be model=version pairs separated by commas, got {item!r}")
        pairs.append((model.strip(), version.strip()))
    return tuple(pairs)


# Whole numbers read from ZOOSERVE_<NAME IN CAPITALS>, each defaulting to its field's default.
LIMITS = ("max_body_bytes", "timeout_seconds", "max_concurrency", "max_generations", "body_timeout_seconds",
          "max_rows", "max_elements", "max_images", "max_steps", "max_jobs", "job_ttl_seconds", "gpus",
          "log_retention_days", "log_queue", "drift_window")


@dataclass(frozen=True)
class Settings:
    """Service configuration: one field per ``ZOOSERVE_*`` variable, with its default."""

    models_dir: Path = Path("models")
    device: Device = "auto"
    device_id: int = 0
    intra_op_threads: int = 0  # 0: one per core this process may run on (its CPU affinity)
    inter_op_threads: int = 0
    required_models: tuple[str, ...] = ()  # empty: serve every model that has a card
    api_key: str | None = field(default=None, repr=False)  # None: the service is open
    max_body_bytes: int = 12 * 1024 * 1024  # a 10 MB image plus multipart framing
    timeout_seconds: int = 600  # then 504 with a JSON error; 64 digits at 1,000 diffusion steps need minutes
    max_concurrency: int = 64  # prediction requests in flight per worker; beyond, 429 instead of a queue
    max_generations: int = 16  # generation requests in flight; they queue on the one Generators worker
    body_timeout_seconds: int = 30  # a request body not received in full by then: 408
    max_rows: int = 1024  # rows (first dimension) of one /v2 input tensor; beyond, 413
    max_elements: int = 2_000_000  # values in one /v2 input tensor (8 photos at 224x224 are 1.2 M); beyond, 413
    max_images: int = 64  # digits one generation request may ask for (n, frames); at most 64
    max_steps: int = 0  # DDIM steps one request may ask for; 0: as many as the model was trained with
    max_jobs: int = 32  # generation jobs queued or running; beyond, 429
    job_ttl_seconds: int = 600  # a finished job's result is kept this long, then 410
    cors_origins: tuple[str, ...] = ()  # none: browsers on other origins may not call the API
    gpus: int = 0  # GPUs BentoML places each model-running service on (set 1 on a GPU node)
    # "off": the classify endpoints call their model in-process, unbatched; "auto": on with a GPU only
    batching: Switch = "auto"
    access_log: bool = False  # BentoML's access log line per request (its formatting costs ~2% of a request)
    # The first run's training plan (``python -m training --progress``): models still to come are
    # answered with 503 and picked up when their card appears; None: serve what is there at start.
    # Where the deciding worker tells the others which model versions to serve (``repository.control``);
    # the server process makes it at start-up. None: one process, nothing shared.
    control_dir: Path | None = None
    watch: bool = False  # pick up each model or version that appears under the models directory
    pinned_versions: tuple[tuple[str, str], ...] = ()  # (model, version): what requests naming none get
    training_progress: Path | None = None
    # The prediction log's database (``serving.monitoring.predictions``): a SQLAlchemy URL, None: off.
    prediction_log: str | None = field(default=None, repr=False)  # a PostgreSQL URL may hold a password
    log_images: bool = False  # keep uploaded pictures themselves in the log, not only their digest
    log_retention_days: int = 30  # logged answers (and their feedback) older than this are deleted
    log_queue: int = 10_000  # records waiting for the writer; beyond, dropped (and counted)
    drift_window: int = 5000  # the newest items (houses, digits, photos) each model's drift is measured over

    def __post_init__(self) -> None:
        if not 1 <= self.max_images <= 64:  # 64: the request schemas' own ceiling
            raise ValueError(f"ZOOSERVE_MAX_IMAGES must be 1 to 64, got {self.max_images}")
        if self.max_jobs < 1 or self.job_ttl_seconds < 1:
            raise ValueError(f"ZOOSERVE_MAX_JOBS and ZOOSERVE_JOB_TTL_SECONDS must be 1 or more, got "
                             f"{self.max_jobs} and {self.job_ttl_seconds}")
        if min(self.log_retention_days, self.log_queue, self.drift_window) < 1:
            raise ValueError(f"ZOOSERVE_LOG_RETENTION_DAYS, ZOOSERVE_LOG_QUEUE and ZOOSERVE_DRIFT_WINDOW must be 1 or "
                             f"more, got {self.log_retention_days}, {self.log_queue} and {self.drift_window}")
        if self.max_steps < 0:
            raise ValueError(f"ZOOSERVE_MAX_STEPS must be 0 (the model's) or more, got {self.max_steps}")

    @classmethod
    def from_env(cls) -> "Settings":
        """Read ``ZOOSERVE_*``; the README's configuration table lists each variable."""
        return cls(
            models_dir=Path(os.environ.get("ZOOSERVE_MODELS_DIR", "models")),
            device=_choice("ZOOSERVE_DEVICE", cls.device, ("auto", "cpu", "cuda")),  # type: ignore[arg-type]
            device_id=_int("ZOOSERVE_DEVICE_ID", 0),
            intra_op_threads=_int("ZOOSERVE_THREADS", 0),
            inter_op_threads=_int("ZOOSERVE_INTER_OP_THREADS", 0),
            required_models=_list("ZOOSERVE_MODELS"),
            api_key=os.environ.get("ZOOSERVE_API_KEY") or None,
            **{name: _int(f"ZOOSERVE_{name.upper()}", getattr(cls, name)) for name in LIMITS},
            cors_origins=_list("ZOOSERVE_CORS_ORIGINS"),
            batching=_choice("ZOOSERVE_BATCHING", cls.batching, ("auto", "on", "off")),  # type: ignore[arg-type]
            access_log=_choice("ZOOSERVE_ACCESS_LOG", "off", ("on", "off")) == "on",
            control_dir=Path(os.environ["ZOOSERVE_CONTROL_DIR"]) if os.environ.get("ZOOSERVE_CONTROL_DIR") else None,
            watch=_choice("ZOOSERVE_WATCH", "off", ("on", "off")) == "on",
            pinned_versions=_pairs("ZOOSERVE_VERSIONS"),
            training_progress=Path(os.environ["ZOOSERVE_TRAINING_PROGRESS"])
            if os.environ.get("ZOOSERVE_TRAINING_PROGRESS") else None,
            prediction_log=None if os.environ.get("ZOOSERVE_PREDICTION_LOG", "off") in ("", "off")
            else os.environ["ZOOSERVE_PREDICTION_LOG"],
            log_images=_choice("ZOOSERVE_LOG_IMAGES", "off", ("on", "off")) == "on",
        )
