"""Loads every model card under the models directory, verifies it and warms it up.

The registry is the only code that touches ``models/``: it refuses a graph whose sha256 differs
from its card (the service never serves an unverified graph), builds sessions through the one
session factory, serves an int8 copy only where its stored check holds on this CPU, and runs one
inference per graph before the service reports ready. During a first run it also picks up each
model as its card appears and answers for those still training (``training_plan``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort

from serving.errors import Unavailable
from serving.repository import training_plan
from serving.repository.card import Card, CardError, Tensor, validate
from serving.repository.sessions import make_session
from serving.repository.telemetry import metrics
from serving.repository.variants import rerun_check
from serving.settings import Settings

logger = logging.getLogger("bentoml.zooserve")  # a child of BentoML's logger shares its handlers
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # where ``serving`` imports from
WATCH_SECONDS = 2  # how often a first run's server looks for newly trained models


class ModelLoadError(RuntimeError):
    """A model in models/ cannot be served as exported; start-up stops with this message."""


class ModelNotLoaded(Unavailable, LookupError):
    """An endpoint asked for a model this instance does not serve."""


@dataclass
class LoadedModel:
    name: str
    card: Card
    sessions: dict[str, ort.InferenceSession] = field(default_factory=dict)
    graph_choice: str = ""  # why the served model graph is a variant or not, on this machine (GET /models)
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
    """The card of ``model_dir``, validated against the contract (``serving.repository.card``)."""
    card_path = model_dir / "card.json"
    try:
        return validate(json.loads(card_path.read_text()), str(card_path))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{card_path}: cannot read the model card ({error})") from None
    except CardError as error:
        raise ModelLoadError(str(error)) from None


def verify_graphs(model_dir: Path, card: Card) -> None:
    """Check that every graph, variant and variant check the card lists exists with the card's sha256."""
    checks = [variant.check for variant in card.variants.values() if variant.check is not None]
    for spec in [*card.graphs.values(), *card.variants.values(), *checks]:
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


def served_here(model_dir: Path, card: Card, settings: Settings,
                session: ort.InferenceSession | None = None) -> tuple[Card, str]:
    """The card as this machine serves it, and why: its served variant (int8) only where the
    variant's stored check rows still pick the fp32 graph's classes on this CPU (int8 kernels differ
    by CPU, ``serving.repository.variants``); else the card without it, so that answers name the fp32 graph.
    ``session``: the variant's session, where the caller has made it already."""
    if card.served_variant is None:
        return card, "the fp32 graph (the card serves no variant)"
    variant = card.variants[card.served_variant]
    if variant.check is None:
        return card, f"{variant.file} (the card stores no check to rerun)"
    session = session or make_session(model_dir / variant.file, settings)
    outcome = rerun_check(model_dir / variant.check.file, lambda feeds: session.run(None, feeds)[0],
                          variant.check.tie_tolerance, variant.check.max_flip_fraction)
    if outcome.holds:
        return card, (f"{variant.file}: agrees with the fp32 graph on this CPU "
                      f"({outcome.rows - outcome.top1_changed}/{outcome.rows} check rows)")
    reason = f"{card.graphs[variant.of].file}: {outcome.describe(variant.file)} on this CPU"
    logger.warning("%s: serving %s instead of %s: %s", card.name, card.graphs[variant.of].file, variant.file,
                   outcome.describe(variant.file))
    return card.model_copy(update={"served_variant": None}), reason


def model_dirs(settings: Settings) -> list[Path]:
    """Every model folder to serve, after checking the required ones are there. During a first run
    (``settings.training_progress``) the models it still trains may be missing, all of them at first."""
    root = settings.models_dir
    coming = set(training_plan.planned(settings.training_progress))
    missing = [name for name in settings.required_models
               if name not in coming and not (root / name / "card.json").exists()]
    if missing:
        raise ModelLoadError(f"required models {missing} have no card under {root.resolve()}; "
                             f"train them with `make train MODEL=<name>`")
    # Not the export step's staging folders (".<name>-..."), which hold a card before they are renamed.
    found = sorted(path.parent for path in root.glob("*/card.json") if not path.parent.name.startswith("."))
    if not found and settings.training_progress is None:
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
    check = subprocess.run([sys.executable, "-c",
                            "from serving.repository.registry import _verify_from_env; _verify_from_env()"],
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


class ModelTraining(Unavailable):
    """An endpoint asked for a model the first run is still training (503 with the time it needs)."""


class Registry:
    """All models this instance knows, keyed by name, loaded and warmed up at construction.

    Every card is read, but sessions are built only for the models ``runs_here`` accepts: a
    service whose models run in a dependency (the batched classifiers) needs their cards alone.
    During a first run (``settings.training_progress``) a thread picks up each model whose card
    appears, so that it serves without a restart; ``models`` is replaced whole, never changed in
    place, so a request reading it never sees it half-updated.
    """

    def __init__(self, settings: Settings, runs_here: Callable[[str], bool] = lambda _name: True) -> None:
        self.settings = settings
        self.runs_here = runs_here
        self.models: dict[str, LoadedModel] = {}
        self.generation = 0  # counts the changes to ``models``: what per-worker caches of it are keyed on
        for model_dir in model_dirs(settings):
            self._add(self._load(model_dir))
        if settings.training_progress is not None:
            threading.Thread(target=self._watch, name="zooserve-model-watch", daemon=True).start()

    def _load(self, model_dir: Path) -> LoadedModel:
        card = read_card(model_dir)
        if self.runs_here(card.name):
            # Verified again before loading: a worker may start long after the server process
            # checked; the graphs a worker does not load are not hashed again there.
            verify_graphs(model_dir, card)
            sessions = {graph: make_session(model_dir / spec.file, self.settings)
                        for graph, spec in card.served_graphs.items()}
            checked, choice = served_here(model_dir, card, self.settings, sessions["model"])
            if checked is not card:
                sessions["model"] = make_session(model_dir / checked.graphs["model"].file, self.settings)
            model = LoadedModel(name=card.name, card=checked, sessions=sessions, graph_choice=choice)
        else:  # the card alone: this process never answers for the model
            model = LoadedModel(name=card.name, card=card)
        model.warm_up()
        providers = {graph: session.get_providers() for graph, session in model.sessions.items()}
        logger.info("loaded %s %s providers=%s", model.name, model.card.version, providers)
        if model.sessions:
            metrics().model_loaded.labels(model.name, model.card.version,
                                          ",".join(sorted({p for ps in providers.values() for p in ps}))).set(1)
        return model

    def _add(self, model: LoadedModel) -> None:
        self.models = {**self.models, model.name: model}
        self.generation += 1

    def _watch(self) -> None:
        """Load each model whose card appears under the models directory, until every one is loaded."""
        refused: dict[str, str] = {}  # a folder that failed to load, and why: logged once, retried each look
        while not self.ready:
            time.sleep(WATCH_SECONDS)
            for model_dir in model_dirs(self.settings):
                if model_dir.name in self.models:
                    continue
                try:
                    self._add(self._load(model_dir))
                except Exception as error:  # ONNX Runtime raises its own types; this thread must go on
                    if refused.get(model_dir.name) != str(error):
                        logger.warning("cannot load %s: %s", model_dir.name, error)
                    refused[model_dir.name] = str(error)

    def pending(self) -> dict[str, training_plan.Pending]:
        """The first run's models this instance cannot answer for yet, with the time each still needs."""
        return training_plan.pending(training_plan.read(self.settings.training_progress), set(self.models))

    @property
    def ready(self) -> bool:
        """Every model loaded: those of the models directory and, in a first run, all it trains."""
        return bool(self.models) and not self.pending()

    def get(self, name: str) -> LoadedModel:
        try:
            return self.models[name]
        except KeyError:
            coming = self.pending().get(name)
            if coming is not None:
                raise ModelTraining(coming.message(), retry_after=max(1, min(60, round(coming.seconds_left)))
                                    ) from None
            raise ModelNotLoaded(f"model {name!r} is not loaded on this server "
                                 f"(loaded: {sorted(self.models)})") from None
