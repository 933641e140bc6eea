"""Loads every model card under the models directory, verifies it and warms it up.

The registry is the only code that touches ``models/``: it refuses a graph whose sha256 differs
from its card (the service never serves an unverified graph), builds sessions through the one
session factory and runs one inference per graph before the service reports ready.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort

from .card import Card, CardError, Tensor, validate
from .errors import Unavailable
from .sessions import make_session
from .settings import Settings
from .telemetry import metrics

logger = logging.getLogger("bentoml.zooserve")  # a child of BentoML's logger shares its handlers
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # where ``serving`` imports from


class ModelLoadError(RuntimeError):
    """A model in models/ cannot be served as exported; start-up stops with this message."""


class ModelNotLoaded(Unavailable, LookupError):
    """An endpoint asked for a model this instance does not serve."""


@dataclass
class LoadedModel:
    name: str
    card: Card
    sessions: dict[str, ort.InferenceSession] = field(default_factory=dict)
    _observers: dict[str, tuple] = field(default_factory=dict, repr=False)  # graph -> its labelled series

    @property
    def summary(self) -> dict[str, str]:
        """What every answer says about the model that produced it."""
        return {"name": self.name, "version": self.card.version, "sha256": self.card.sha256}

    def input_spec(self, graph: str = "model") -> list[Tensor]:
        return self.card.graphs[graph].inputs

    def run(self, inputs: dict[str, np.ndarray], graph: str = "model") -> list[np.ndarray]:
        start = time.perf_counter()
        outputs = self.sessions[graph].run(None, inputs)
        self.observe(graph, time.perf_counter() - start, len(next(iter(inputs.values()))))
        return outputs

    def observe(self, graph: str, seconds: float, batch: int) -> None:
        """Record ONNX Runtime time and batch size of one call (or one sampling loop of calls)."""
        if graph not in self._observers:  # a labels() lookup per call cost as much as the observations
            recorded = metrics()
            self._observers[graph] = (recorded.inference_seconds.labels(self.name, graph),
                                      recorded.batch_size.labels(self.name, graph))
        seconds_series, batch_series = self._observers[graph]
        seconds_series.observe(seconds)
        batch_series.observe(batch)

    def warm_up(self) -> None:
        for graph, session in self.sessions.items():
            feeds = {spec.name: np.zeros([1 if d < 0 else d for d in spec.shape], dtype=spec.dtype)
                     for spec in self.input_spec(graph)}
            session.run(None, feeds)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in blocks (the export step writes it into the card)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_card(model_dir: Path) -> Card:
    """The card of ``model_dir``, validated against the contract (``serving.card``)."""
    card_path = model_dir / "card.json"
    try:
        return validate(json.loads(card_path.read_text()), str(card_path))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{card_path}: cannot read the model card ({error})") from None
    except CardError as error:
        raise ModelLoadError(str(error)) from None


def verify_graphs(model_dir: Path, card: Card) -> None:
    """Check that every graph and variant the card lists exists with the card's sha256."""
    for spec in [*card.graphs.values(), *card.variants.values()]:
        path = model_dir / spec.file
        if not path.is_file():
            raise ModelLoadError(f"{card.name}: graph file {path} is missing; retrain with `make train MODEL={card.name}`")
        actual = sha256_of(path)
        if actual != spec.sha256:
            raise ModelLoadError(f"{card.name}: {path} has sha256 {actual[:12]}… but its card says "
                                 f"{spec.sha256[:12]}…; refusing to serve an unverified graph")


def read_verified_card(model_dir: Path) -> Card:
    """The card of ``model_dir`` after checking every graph it lists exists with its sha256."""
    card = read_card(model_dir)
    verify_graphs(model_dir, card)
    return card


def model_dirs(settings: Settings) -> list[Path]:
    """Every model folder to serve, after checking the required ones are there."""
    root = settings.models_dir
    missing = [name for name in settings.required_models if not (root / name / "card.json").exists()]
    if missing:
        raise ModelLoadError(f"required models {missing} have no card under {root.resolve()}; "
                             f"train them with `make train MODEL=<name>`")
    found = sorted(path.parent for path in root.glob("*/card.json"))
    if not found:
        raise ModelLoadError(f"no models under {root.resolve()} (set ZOOSERVE_MODELS_DIR or run `make train`)")
    return found


def verify_models(settings: Settings) -> None:
    """Check every card and graph hash, and that ONNX Runtime loads each graph (on the CPU, unoptimised:
    a graph it cannot load would otherwise fail inside a worker, which BentoML restarts forever)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    for model_dir in model_dirs(settings):
        card = read_verified_card(model_dir)
        for spec in [*card.graphs.values(), *card.variants.values()]:
            try:
                ort.InferenceSession(str(model_dir / spec.file), options, providers=["CPUExecutionProvider"])
            except Exception as error:  # ONNX Runtime raises its own exception types, one per failure
                raise ModelLoadError(f"{card.name}: ONNX Runtime cannot load {model_dir / spec.file}: "
                                     f"{error}") from None


def verify_models_apart() -> None:
    """``verify_models`` for the settings in the environment, in a child process that ends after it.

    The server process (BentoML's supervisor) lives as long as the server and never runs a model;
    the graphs loaded to check them stayed in its memory for good (229 MB instead of 109 MB with two
    models, ``bench.floor`` measures every process)."""
    check = subprocess.run([sys.executable, "-c", "from serving.registry import _verify_from_env; _verify_from_env()"],
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(
                               filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))})
    if check.returncode != 0:
        lines = check.stderr.strip().splitlines()
        raise ModelLoadError(lines[-1] if lines else f"model verification exited with {check.returncode}")


def _verify_from_env() -> None:
    try:
        verify_models(Settings.from_env())
    except ModelLoadError as error:
        sys.exit(str(error))  # the parent reads this last line of stderr


class Registry:
    """All models this instance knows, keyed by name, loaded and warmed up at construction.

    Every card is read, but sessions are built only for the models ``runs_here`` accepts: a
    service whose models run in a dependency (the batched classifiers) needs their cards alone.
    """

    def __init__(self, settings: Settings, runs_here: Callable[[str], bool] = lambda _name: True) -> None:
        self.settings = settings
        self.models: dict[str, LoadedModel] = {}
        for model_dir in model_dirs(settings):
            card = read_card(model_dir)
            model = LoadedModel(name=card.name, card=card)
            if runs_here(model.name):
                # Verified again before loading: a worker may start long after the server process
                # checked; the graphs a worker does not load are not hashed again there.
                verify_graphs(model_dir, card)
                model.sessions = {graph: make_session(model_dir / spec.file, settings)
                                  for graph, spec in card.served_graphs.items()}
            model.warm_up()
            self.models[model.name] = model
            providers = {graph: session.get_providers() for graph, session in model.sessions.items()}
            logger.info("loaded %s %s providers=%s", model.name, model.card.version, providers)
            if model.sessions:
                metrics().model_loaded.labels(model.name, model.card.version,
                                              ",".join(sorted({p for ps in providers.values() for p in ps}))).set(1)

    def get(self, name: str) -> LoadedModel:
        try:
            return self.models[name]
        except KeyError:
            raise ModelNotLoaded(f"model {name!r} is not loaded on this server "
                                 f"(loaded: {sorted(self.models)})") from None
