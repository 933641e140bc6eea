"""Shared fixtures: the real datasets (``$DATA_DIR``) and tiny quick-profile models trained once."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from loadtests.server import free_port, served

from .postgres import Postgres, binaries, postgres_server

TRAIN_ROWS = 2000  # tiny trainings: tests prove the pipeline, `make train` earns the metrics
TRANSFER_IMAGES = 32
TRAINING_COST_FIELDS = ("wall_seconds", "cpu_seconds")


def records_training_cost(card: dict) -> bool:
    """The card states what training cost (the seed's sustainability point); no speed is judged."""
    return all(card["training"][field] > 0 for field in TRAINING_COST_FIELDS)
GENERATIVE_IMAGES = 2000  # the generative models' quick profiles on a slice: pipeline, not quality
GENERATED_FOR_METRICS = 300  # the images each generative model's card metrics are measured on (quick: 1,000)
CLASSICAL_IMAGES = 2000  # the classical digit classifiers' grids and fits on a slice


@pytest.fixture(scope="session", autouse=True)
def _environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not (Path(os.environ.get("DATA_DIR", "data")) / "MNIST").is_dir():
        pytest.exit(f"DATA_DIR={os.environ.get('DATA_DIR', 'data')} has no datasets; "
                    "run with DATA_DIR=../shared/data (see README)", returncode=2)
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    os.environ["ZOOSERVE_REPORTS_DIR"] = str(tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every served model, quick profile, in a temp dir (house prices on the first 2,000 training
    rows, the transfer CNN on 32 training images; the digit CNN's quick profile as is, since the
    HTTP tests hold it to 97% accuracy, and it must come first: it scores the generative models)."""
    if reuse := os.environ.get("ZOOSERVE_TEST_MODELS"):  # a set trained by an earlier run, to iterate faster
        return Path(reuse)
    from training.catalog import recipes, train

    root = tmp_path_factory.mktemp("models")
    limits = {"house-price-gbm": TRAIN_ROWS, "house-price-mlp": TRAIN_ROWS, "transfer-cnn": TRANSFER_IMAGES,
              **dict.fromkeys(("vae", "gan", "diffusion", "vae-conditional", "gan-conditional", "gan-wgan-gp"),
                             GENERATIVE_IMAGES),
              **dict.fromkeys(("mnist-logreg", "mnist-knn", "mnist-tree", "mnist-forest"), CLASSICAL_IMAGES)}
    for name in recipes():  # in the CLI's order: mnist-cnn before the generative models it scores
        train(name, "quick", seed=0, limit=limits.get(name), out_root=root,
              eval_limit=GENERATED_FOR_METRICS if recipes()[name].task == "image-generation" else None)
    return root


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server for the prediction log's tests, started once per session."""
    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql); .ci/run installs it")
    with postgres_server() as started:
        yield started


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty prediction-log database of each kind the log supports: its URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'logs' / 'predictions.db'}"
    return request.getfixturevalue("postgres").create_database(f"log_{secrets.token_hex(6)}")


@pytest.fixture(scope="session")
def server(trained_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server (`python -m serving`) on a free loopback port over the session's models,
    shared by the integration and browser tests."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    # As `make serve` runs it: every answer logged (to SQLite), so every test goes through the log.
    environment = {"ZOOSERVE_MODELS_DIR": str(trained_models),
                   "ZOOSERVE_PREDICTION_LOG": f"sqlite:///{log.parent / 'predictions.db'}"}
    with served(free_port(), log, environment, core=None) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http
