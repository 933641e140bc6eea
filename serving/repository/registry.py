"""Loads every model card under the models directory, verifies it and warms it up.

The registry is the only code that touches ``models/``: it refuses a graph whose sha256 differs
from its card (the service never serves an unverified graph), builds sessions through the one
session factory, serves an int8 copy only where its stored check holds on this CPU, and runs one
inference per graph before the service reports ready. During a first run it also picks up each
model as its card appears and answers for those still training (``training_plan``).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NoReturn

import numpy as np
import onnxruntime as ort

from serving.errors import FieldError, ServiceError, Unavailable
from serving.heap import release_freed_memory
from serving.repository import control, layout, training_plan
from serving.repository.card import Card, CardError, Tensor, validate
from serving.repository.layout import by_version as version_folders
from serving.repository.policy import Policy
from serving.repository.sessions import SHRINK_ARENA, make_session
from serving.repository.telemetry import metrics
from serving.repository.variants import rerun_check
from serving.settings import Settings

logger = logging.getLogger("bentoml.zooserve")  # a child of BentoML's logger shares its handlers
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # where ``serving`` imports from
WATCH_SECONDS = 2  # how often the workers look at the control file, and a watching one at the models
# How long a following worker keeps a version it dropped: the API worker may have sent a call on it
# that is still queued there (a generation waits behind others), or be in the middle of a sequence
# of calls (an interpolation's points, then its decoding).
LINGER_SECONDS = 30
RETIRED_KEPT = 256  # retired versions' cards kept to name late answers by: a card each, the oldest go first
LOAD_RETRY_SECONDS = 2  # a load verifies and warms up a graph: seconds for the largest one here
class ModelLoadError(RuntimeError):
    """A model in models/ cannot be served as exported; start-up stops with this message."""


class ModelNotLoaded(ServiceError, LookupError):
    """A request named a model or version this instance does not serve (unknown, or unloaded): 404."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=404, kind="not_found")


class ModelNotFound(ModelNotLoaded):
    """A management call named a model with no published version under the models directory."""


@dataclass
class LoadedModel:
    name: str
    card: Card
    sessions: dict[str, ort.InferenceSession] = field(default_factory=dict)
    graph_choice: str = ""  # why the served model graph is a variant or not, on this machine (GET /models)
    _observers: dict[str, tuple] = field(default_factory=dict, repr=False)  # graph -> its labelled series

    @property
    def number(self) -> int:
        """The version's publish number; 0 for a model exported before versions."""
        return int(self.card.version) if self.card.version.isdigit() else 0

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

    @property
    def providers(self) -> str:
        """The execution providers its sessions run on, as Prometheus labels them."""
        return ",".join(sorted({p for session in self.sessions.values() for p in session.get_providers()}))

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
    card_path = model_dir / layout.CARD
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
    outcome = rerun_check(model_dir / variant.check.file, lambda feeds: session.run(None, feeds, SHRINK_ARENA)[0],
                          variant.check.tie_tolerance, variant.check.max_flip_fraction)
    if outcome.holds:
        return card, (f"{variant.file}: agrees with the fp32 graph on this CPU "
                      f"({outcome.rows - outcome.top1_changed}/{outcome.rows} check rows)")
    reason = f"{card.graphs[variant.of].file}: {outcome.describe(variant.file)} on this CPU"
    logger.warning("%s: serving %s instead of %s: %s", card.name, card.graphs[variant.of].file, variant.file,
                   outcome.describe(variant.file))
    return card.model_copy(update={"served_variant": None}), reason


def names_to_serve(settings: Settings) -> list[str]:
    """Every model with a published version, after checking the required ones are there. During a
    first run (``settings.training_progress``) the models it still trains may be missing, all of
    them at first."""
    root = settings.models_dir
    coming = set(training_plan.planned(settings.training_progress))
    missing = [name for name in settings.required_models
               if name not in coming and not layout.card_file(root, name).exists()]
    if missing:
        raise ModelLoadError(f"required models {missing} have no card under {root.resolve()}; "
                             f"train them with `make train MODEL=<name>`")
    found = layout.model_names(root)
    if not found and settings.training_progress is None:
        raise ModelLoadError(f"no models under {root.resolve()} (set ZOOSERVE_MODELS_DIR or run `make train`)")
    return found


def first_versions(settings: Settings) -> dict[str, list[Path]]:
    """The folders of the versions each model serves from start-up: its newest, and the version
    ``ZOOSERVE_VERSIONS`` pins where that is another (oldest first)."""
    pins = dict(settings.pinned_versions)
    chosen = {}
    for name in names_to_serve(settings):
        published = version_folders(settings.models_dir / name)
        if name in pins and pins[name] not in published:
            raise ModelLoadError(f"ZOOSERVE_VERSIONS pins {name} to version {pins[name]}, which is not published "
                                 f"(published: {list(published)})")
        chosen[name] = [published[version] for version in Policy().pick(list(published), pins.get(name))]
    return chosen


def verify_models(settings: Settings) -> None:
    """Check every card and graph hash, and that ONNX Runtime loads each graph (on the CPU, unoptimised:
    a graph it cannot load would otherwise fail inside a worker, which BentoML restarts forever)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    for model_dir in [folder for folders in first_versions(settings).values() for folder in folders]:
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


class ModelLoading(Unavailable):
    """An endpoint asked for a model a load is bringing up (its first version, being verified)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"model {name!r} is being loaded; retry shortly", retry_after=LOAD_RETRY_SECONDS)


KEEP = object()  # ``load``'s pin: leave the model's pin as it is


@dataclass(frozen=True)
class Served:
    """What a registry serves, replaced whole on each change: a reader holding one sees one state."""

    versions: dict[str, dict[str, LoadedModel]]  # name -> version -> model, oldest first
    models: dict[str, LoadedModel]  # name -> the version a request naming none gets


class Registry:
    """The models this process serves: for each model name, the versions loaded and the one that
    answers when a request names none (the pinned version, else the newest loaded).

    Every card is read, but sessions are built only for the models ``runs_here`` accepts: a
    service whose models run in a dependency (the batched classifiers) needs their cards alone.
    What is served (``served``) is replaced whole, never changed in place: a request reads one
    consistent state, and a version dropped while a request holds it is released when that request
    lets go of it (its sessions are freed with the last reference).

    One process decides (the API worker, ``decides``): it loads what ``load`` is asked for (or, with
    ``ZOOSERVE_WATCH``, every new version that appears) and writes the outcome to the server's
    control file (``control``); the other worker processes follow that file, and keep a version
    they drop for ``LINGER_SECONDS`` more, for the calls the API worker started on it.
    """

    def __init__(self, settings: Settings, runs_here: Callable[[str], bool] = lambda _name: True,
                 decides: bool = False) -> None:
        self.settings = settings
        self.runs_here = runs_here
        self.decides = decides
        self.served = Served({}, {})
        self.pins: dict[str, str] = dict(settings.pinned_versions)
        self.policies: dict[str, Policy] = {}  # a load's version policy, kept for later loads of the model
        self.failures: dict[tuple[str, str], str] = {}  # (name, version) -> why it could not be loaded
        self.unloaded: set[str] = set()  # unloaded through the API: watching does not bring them back
        self.loading: set[str] = set()  # models a load is bringing up while none of their versions serves
        # Cards of versions no longer served, by (name, number): what an answer another worker
        # computed on one a moment before it followed a swap is named by (the newest RETIRED_KEPT).
        self.retired: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        # A following worker's dropped versions, until the time they go: (name, version) -> both.
        self.lingering: dict[tuple[str, str], tuple[LoadedModel, float]] = {}
        self.generation = 0  # counts the changes to ``models``: what per-worker caches of it are keyed on
        self._lock = threading.RLock()  # one change at a time
        self._trim = False  # versions were loaded or dropped since the last look: memory to give back
        self._providers: dict[str, str] = {}  # name -> the providers label its Prometheus series carry
        self._followed = control.Stamp()
        assigned = None if decides else control.read_if_changed(settings, self._followed)
        if assigned is not None:  # a worker (re)started while the server runs: what the API worker serves
            self._follow_assigned(assigned)
        else:
            for name, folders in first_versions(settings).items():
                self._set(name, [self._load(folder) for folder in folders])
        if decides:
            control.write(self.settings, self.assignment())
        self._return_freed()
        # A thread only where there is something to look at: the control file (a worker that
        # follows), a first run's models, or the models directory (ZOOSERVE_WATCH).
        self._stop = threading.Event()
        if (settings.control_dir is not None and not decides) or (
                decides and (settings.watch or settings.training_progress is not None)):
            watcher = threading.Thread(target=self._watch, name="zooserve-model-watch", daemon=True)
            watcher.start()
            atexit.register(self.close, watcher)

    @property
    def versions(self) -> dict[str, dict[str, LoadedModel]]:
        return self.served.versions

    @property
    def models(self) -> dict[str, LoadedModel]:
        return self.served.models

    # --- reading -------------------------------------------------------------------------------

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The model ``name`` at ``version`` (None: the version it serves by default). A following
        worker that misses looks at the control file first: the API worker may have loaded it a
        moment ago (callers on an event loop run this in a thread: a load may follow)."""
        model = self._find(name, version)
        if model is None and not self.decides:
            self._follow()
            model = self._find(name, version)
        if model is not None:
            return model
        loaded = self.versions.get(name, {})
        if version is not None and loaded:
            raise ModelNotLoaded(f"model {name!r} has no version {version!r} loaded (loaded: {list(loaded)})")
        self._not_loaded(name)

    def _find(self, name: str, version: str | None) -> LoadedModel | None:
        served = self.served
        if version is None:
            return served.models.get(name)
        found = served.versions.get(name, {}).get(version)
        if found is None and (name, version) in self.lingering:
            found = self.lingering[(name, version)][0]
        return found

    def _not_loaded(self, name: str) -> NoReturn:
        if name in self.loading:
            raise ModelLoading(name)
        coming = self.pending().get(name)
        if coming is not None:
            raise ModelTraining(coming.message(), retry_after=max(1, min(60, round(coming.seconds_left))))
        raise ModelNotLoaded(f"model {name!r} is not loaded on this server (loaded: {sorted(self.models)})")

    def answered_by(self, name: str, number: float) -> LoadedModel:
        """The version of ``name`` with publish ``number`` (a batched worker's answer says which):
        one served here, one retired, or, for one this process never loaded (a worker restarted
        on another), its card as published."""
        number = round(number)
        for model in self.versions.get(name, {}).values():
            if model.number == number:
                return model
        if (name, number) not in self.retired:
            folder = version_folders(self.settings.models_dir / name).get(str(number)) if number else None
            if folder is None:
                return self.get(name)
            self._retire(LoadedModel(name=name, card=read_card(folder)))
        return self.retired[(name, number)]

    def assignment(self) -> dict[str, control.Assigned]:
        """Which versions of each model this process serves, and the pinned one (the control file's body)."""
        return {name: control.Assigned(list(loaded), self.pins.get(name)) for name, loaded in self.versions.items()}

    def pending(self) -> dict[str, training_plan.Pending]:
        """The first run's models this instance cannot answer for yet, with the time each still needs
        (one unloaded through the API is not coming)."""
        return training_plan.pending(training_plan.read(self.settings.training_progress),
                                     set(self.models) | self.unloaded)

    @property
    def ready(self) -> bool:
        """Every model loaded: those of the models directory and, in a first run, all it trains."""
        return bool(self.models) and not self.pending()

    def index(self) -> list[dict[str, str]]:
        """Every version published under the models directory with its state: READY where this
        process serves it, else UNAVAILABLE with the reason (Triton's repository index)."""
        entries = []
        for name in layout.model_names(self.settings.models_dir):
            loaded = self.versions.get(name, {})
            for version, _path in version_folders(self.settings.models_dir / name).items():
                entry = {"name": name, "version": version, "state": "READY" if version in loaded else "UNAVAILABLE"}
                if version not in loaded:
                    entry["reason"] = self.failures.get((name, version), "not loaded")
                entries.append(entry)
        return entries

    # --- changing (the deciding process) ---------------------------------------------------------

    def load(self, name: str, policy: Policy | None = None, pin: str | None | object = KEEP) -> list[str]:
        """Load (or reload) the versions of ``name`` its version policy picks among those published,
        each verified and warmed up before it takes traffic; returns them. ``pin``: the version
        requests naming none get from now on (None: the newest loaded again). A version that fails
        leaves what was serving as it was and raises ``ModelLoadError`` with the cause."""
        with self._lock:
            pins = self._pinned(name, pin)
            wanted = self._wanted(name, policy, pins)
            fresh: dict[str, LoadedModel] = {}
            published = version_folders(self.settings.models_dir / name)
            if name not in self.versions:
                self.loading.add(name)  # requests for it answer 503 until this ends, not 404
            try:
                for version in wanted:
                    if version not in self.versions.get(name, {}):
                        fresh[version] = self._load(published[version])
            except Exception as error:  # ONNX Runtime raises its own types: each one refuses the load
                self.failures[(name, version)] = str(error)
                raise ModelLoadError(f"{name} version {version}: {error}") from None
            finally:
                self.loading.discard(name)
            self.policies[name] = policy or self.policies.get(name, Policy())
            self.unloaded.discard(name)
            self.pins = pins
            self._set(name, [fresh.get(version) or self.versions[name][version] for version in wanted])
            control.write(self.settings, self.assignment())
        self._return_freed()
        return wanted

    def _pinned(self, name: str, pin: str | None | object) -> dict[str, str]:
        """Every model's pin once ``load`` has set ``name``'s to ``pin`` (a published version, or None)."""
        if pin is KEEP:
            return self.pins
        if pin is None:
            return {key: value for key, value in self.pins.items() if key != name}
        published = list(version_folders(self.settings.models_dir / name))
        if pin not in published:
            raise FieldError("parameters.default_version", f"{name} has no published version {pin!r} "
                                                           f"(published: {published})", status=404)
        return {**self.pins, name: pin}

    def _wanted(self, name: str, policy: Policy | None, pins: dict[str, str]) -> list[str]:
        published = version_folders(self.settings.models_dir / name)
        if not published:
            raise ModelNotFound(f"model {name!r} has no published version under the models directory")
        return (policy or self.policies.get(name, Policy())).pick(list(published), pins.get(name))

    def unload(self, name: str) -> None:
        """Stop serving every version of ``name``; requests already running on one finish on it."""
        with self._lock:
            if name not in self.versions and not version_folders(self.settings.models_dir / name):
                raise ModelNotFound(f"model {name!r} is neither loaded nor published under the models directory")
            self.unloaded.add(name)
            if name in self.versions:
                self._set(name, [])
                control.write(self.settings, self.assignment())
        self._return_freed()

    def close(self, watcher: threading.Thread) -> None:
        """Stop the watching thread and wait for it, at interpreter exit: with such threads still
        running there, a process that had built several registries aborted on its way out
        ("terminate called without an active exception", exit status 134)."""
        self._stop.set()
        watcher.join(timeout=2 * WATCH_SECONDS)

    # --- internals -------------------------------------------------------------------------------

    def _load(self, model_dir: Path) -> LoadedModel:
        card = read_card(model_dir)
        if model_dir.name.isdigit() and card.version != model_dir.name:
            raise ModelLoadError(f"{card.name}: {model_dir / layout.CARD} says version {card.version!r} but is "
                                 f"published as version {model_dir.name}")
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
        logger.info("loaded %s %s %s", model.name, model.card.version,
                    f"providers={providers}" if providers else "(its card: another worker runs it)")
        return model

    def _set(self, name: str, models: list[LoadedModel]) -> None:
        """Serve exactly ``models`` (oldest first) for ``name``; none: the model is unloaded."""
        kept = {model.card.version for model in models}
        dropped = [model for version, model in self.versions.get(name, {}).items() if version not in kept]
        versions = {**self.versions, name: {model.card.version: model for model in models}}
        if not models:
            del versions[name]
        default = versions.get(name, {}).get(self.pins.get(name, ""), models[-1] if models else None)
        served = {**self.models, name: default} if default is not None else \
            {key: value for key, value in self.models.items() if key != name}
        self.served = Served(versions, served)
        self.generation += 1
        self._report(name, models)
        for model in dropped:
            self._retire(LoadedModel(name=model.name, card=model.card))
            if self.decides:
                logger.info("unloaded %s %s", name, model.card.version)
            else:  # the API worker may have sent a call on it that is still on its way
                self.lingering[(name, model.card.version)] = (model, time.monotonic() + LINGER_SECONDS)
        self._trim = True  # a load's parsing buffers, or the dropped versions' sessions, are freed

    def _retire(self, model: LoadedModel) -> None:
        self.retired[(model.name, model.number)] = model
        while len(self.retired) > RETIRED_KEPT:
            self.retired.popitem(last=False)

    def _report(self, name: str, models: list[LoadedModel]) -> None:
        """Prometheus: how many versions of ``name`` run in this process and the number of the one
        requests naming none get. No series is labelled by version, so versions that come and go
        leave none behind (a multiprocess series outlives its removal until the worker ends)."""
        running = [model for model in models if model.sessions]
        label = running[-1].providers if running else self._providers.get(name)
        if label is None:  # a model this process only knows the card of
            return
        recorded = metrics()
        if self._providers.get(name, label) != label:
            recorded.model_loaded.labels(name, self._providers[name]).set(0)
        self._providers[name] = label
        recorded.model_loaded.labels(name, label).set(len(running))
        recorded.model_version.labels(name).set(self.served.models[name].number if running else 0)

    def _return_freed(self) -> None:
        """Memory back to the system once the served versions changed, outside the change's frames
        (which held the dropped models): the sessions nobody runs any longer are gone by then. In
        one process, 30 unload/load cycles of every model grew RSS by 15% without this, and by none
        with it."""
        if self._trim:
            self._trim = False
            release_freed_memory(collect=True)

    def _expire_lingering(self) -> None:
        now = time.monotonic()
        expired = [key for key, (_model, until) in self.lingering.items() if until <= now]
        for key in expired:
            self.lingering.pop(key)
            logger.info("unloaded %s %s", *key)
            self._trim = True

    def _follow(self) -> None:
        """Serve what the control file says the deciding process serves."""
        with self._lock:  # a request waiting here then finds what the file said when it returns
            assigned = control.read_if_changed(self.settings, self._followed)
            if assigned is not None:
                self._follow_assigned(assigned)
        self._return_freed()

    def _follow_assigned(self, assigned: dict[str, control.Assigned]) -> None:
        for name in set(self.versions) - set(assigned):
            self._set(name, [])
        for name, wanted in assigned.items():
            loaded = self.versions.get(name, {})
            if list(loaded) == wanted.versions and self.pins.get(name) == wanted.pinned:
                continue
            published = version_folders(self.settings.models_dir / name)
            try:
                models = [loaded.get(version) or self._load(published[version]) for version in wanted.versions]
            except Exception as error:  # the deciding process verified it: a fault here is this process's
                logger.warning("cannot follow %s to versions %s: %s; trying again at the next look",
                               name, wanted.versions, error)
                self._followed.seen = None  # read the file again next time, unchanged or not
                continue
            self.pins = {**self.pins, name: wanted.pinned} if wanted.pinned else \
                {key: value for key, value in self.pins.items() if key != name}
            self._set(name, models)

    def _watch(self) -> None:
        """Every ``WATCH_SECONDS``: the control file (the following processes) and the versions
        they keep for calls on their way; in the deciding one, a first run's models as their
        cards appear and, with ``ZOOSERVE_WATCH``, each model or version that appears (not one
        unloaded through the API: it comes back with ``load``)."""
        refused: dict[str, str] = {}  # a model that failed to load, and why: logged once
        while not self._stop.wait(WATCH_SECONDS):
            if not self.decides:
                self._follow()
                with self._lock:
                    self._expire_lingering()
                self._return_freed()
                continue
            try:
                names = names_to_serve(self.settings)
            except Exception as error:  # a required model removed, say: the next look may find it again
                logger.warning("cannot read the models directory: %s", error)
                continue
            waiting = not self.ready  # read once a look: it reads the first run's plan file
            for name in names:
                if name in self.unloaded or not self._should_load(name, waiting):
                    continue
                try:
                    self.load(name)
                except Exception as error:  # ONNX Runtime raises its own types; this thread must go on
                    if refused.get(name) != str(error):
                        logger.warning("cannot load %s: %s", name, error)
                    refused[name] = str(error)

    def _should_load(self, name: str, waiting: bool) -> bool:
        """A first run's model not loaded yet (``waiting``: the run is not over), or, with
        ``ZOOSERVE_WATCH``, one whose policy now picks other versions than those loaded (a version
        it failed to load is not tried again)."""
        if name not in self.models and waiting:
            return True
        if not self.settings.watch:
            return False
        try:
            wanted = self._wanted(name, None, self.pins)
        except ServiceError:  # a specific policy naming a version no longer published, say
            return False
        fresh = [version for version in wanted if version not in self.versions.get(name, {})]
        return bool(fresh) and not any((name, version) in self.failures for version in fresh)
