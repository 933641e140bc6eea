"""The live model repository in one process: versions, policies, load, unload, and a follower."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from serving.errors import FieldError
from serving.repository import control, layout
from serving.repository.policy import Policy
from serving.repository.registry import ModelLoadError, ModelLoading, ModelNotLoaded, Registry
from serving.settings import Settings

MODEL = "house-price-gbm"
ROW = {"features": np.array([[8.3, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]], np.float32)}


def publish_copy(trained_models: Path, models: Path, name: str = MODEL) -> str:
    """The trained model's newest version published again as the next version of ``models/name``."""
    source = layout.newest(trained_models / name)
    staging = models / f".{name}-copy"
    shutil.copytree(source, staging)

    return layout.publish(staging, models / name, json.loads((staging / layout.CARD).read_text()))


@pytest.fixture
def two_versions(trained_models, tmp_path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    for _ in range(2):
        publish_copy(trained_models, models)
    return models


def test_policies_pick_among_published_versions():
    published = ["1", "2", "3"]
    assert Policy().pick(published) == ["3"]
    assert Policy("latest", count=2).pick(published) == ["2", "3"]
    assert Policy("all").pick(published) == published
    assert Policy("specific", versions=("3", "1")).pick(published) == ["1", "3"]
    assert Policy().pick(published, pinned="1") == ["1", "3"]  # a pinned version is always loaded
    assert Policy.from_config('{"version_policy": {"latest": {"num_versions": 2}}}') == Policy("latest", count=2)
    assert Policy.from_config({"version_policy": {"specific": {"versions": [1, 3]}}}).versions == ("1", "3")
    assert Policy.from_config("{}") == Policy()
    with pytest.raises(FieldError, match="versions \\['4'\\] that are not published"):
        Policy("specific", versions=("4",)).pick(published)
    with pytest.raises(FieldError, match="names no version"):
        Policy("specific").pick(published)
    with pytest.raises(FieldError, match="num_versions must be 1 or more"):
        Policy.from_config('{"version_policy": {"latest": {"num_versions": 0}}}')


def test_the_newest_version_serves_and_a_load_brings_up_what_its_policy_picks(two_versions):
    registry = Registry(Settings(models_dir=two_versions))
    assert list(registry.versions[MODEL]) == ["2"] and registry.get(MODEL).card.version == "2"
    assert registry.load(MODEL, Policy("all")) == ["1", "2"]
    assert registry.get(MODEL, "1").card.version == "1" and registry.get(MODEL).card.version == "2"
    assert [entry["state"] for entry in registry.index() if entry["name"] == MODEL] == ["READY", "READY"]
    with pytest.raises(ModelNotLoaded, match="no version '7'") as refused:
        registry.get(MODEL, "7")
    assert refused.value.status == 404


def test_a_broken_new_version_never_replaces_the_one_serving(two_versions, trained_models):
    registry = Registry(Settings(models_dir=two_versions))
    broken = publish_copy(trained_models, two_versions)
    with (two_versions / MODEL / broken / "model.onnx").open("ab") as graph:
        graph.write(b"\0")
    with pytest.raises(ModelLoadError, match=f"version {broken}: .*sha256"):
        registry.load(MODEL)
    assert registry.get(MODEL).card.version == "2"  # still serving, and answering
    assert registry.get(MODEL).run(ROW)[0].shape == (1, 1)
    entry = next(entry for entry in registry.index() if entry["version"] == broken)
    assert entry["state"] == "UNAVAILABLE" and "sha256" in entry["reason"]


def test_an_unloaded_model_is_a_404_and_a_request_holding_it_finishes(two_versions):
    registry = Registry(Settings(models_dir=two_versions))
    running = registry.get(MODEL)  # a request in flight holds its version
    registry.unload(MODEL)
    with pytest.raises(ModelNotLoaded, match="not loaded") as refused:
        registry.get(MODEL)
    assert refused.value.status == 404 and MODEL not in registry.models
    assert running.run(ROW)[0].shape == (1, 1)
    registry.unload(MODEL)  # published, not loaded: nothing to do
    with pytest.raises(ModelNotLoaded, match="neither loaded nor published"):
        registry.unload("no-such-model")
    assert registry.load(MODEL) == ["2"]


def test_a_pinned_version_answers_requests_that_name_none(two_versions):
    registry = Registry(Settings(models_dir=two_versions, pinned_versions=((MODEL, "1"),)))
    assert list(registry.versions[MODEL]) == ["1", "2"] and registry.get(MODEL).card.version == "1"
    with pytest.raises(ModelLoadError, match="pins house-price-gbm to version 9"):
        Registry(Settings(models_dir=two_versions, pinned_versions=((MODEL, "9"),)))


def test_a_load_pins_the_version_requests_naming_none_get_and_unpins_it(two_versions):
    registry = Registry(Settings(models_dir=two_versions))
    assert registry.load(MODEL, pin="1") == ["1", "2"]  # a pinned version is loaded beside the policy's
    assert registry.get(MODEL).card.version == "1" and registry.pins == {MODEL: "1"}
    assert registry.assignment()[MODEL] == control.Assigned(["1", "2"], "1")  # the other workers follow it
    with pytest.raises(FieldError, match="no published version '7'") as refused:
        registry.load(MODEL, pin="7")
    assert refused.value.status == 404 and registry.get(MODEL).card.version == "1"
    assert registry.load(MODEL) == ["1", "2"]  # a load naming no pin keeps it
    assert registry.load(MODEL, pin=None) == ["2"] and registry.get(MODEL).card.version == "2"


def test_a_model_being_loaded_is_a_503_with_retry_after_and_a_404_once_it_fails(two_versions, trained_models):
    registry = Registry(Settings(models_dir=two_versions), decides=True)  # the API worker, which answers REST
    registry.unload(MODEL)
    started, finish = threading.Event(), threading.Event()
    load_one = registry._load

    def slow_load(folder: Path):
        started.set()
        finish.wait(10)
        return load_one(folder)

    registry._load = slow_load
    loading = threading.Thread(target=registry.load, args=(MODEL,))
    loading.start()
    assert started.wait(10)
    with pytest.raises(ModelLoading) as refused:
        registry.get(MODEL)
    assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1
    finish.set()
    loading.join()
    assert registry.get(MODEL).card.version == "2"
    registry.unload(MODEL)
    broken = publish_copy(trained_models, two_versions)
    (two_versions / MODEL / broken / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelLoadError):
        registry.load(MODEL)
    with pytest.raises(ModelNotLoaded):  # the load is over: not loaded, not loading
        registry.get(MODEL)


def test_other_workers_follow_the_deciding_ones_control_file(two_versions, tmp_path):
    settings = Settings(models_dir=two_versions, control_dir=tmp_path)
    deciding, follower = Registry(settings, decides=True), Registry(settings)
    deciding.load(MODEL, Policy("all"))
    assert json.loads((tmp_path / control.FILE).read_text())[MODEL] == {"versions": ["1", "2"], "pinned": None}
    assert follower.get(MODEL, "1").card.version == "1"  # a version named before the follower looked
    deciding.load(MODEL, Policy())  # version 1 goes
    follower._follow()
    assert list(follower.versions[MODEL]) == ["2"]
    assert follower.get(MODEL, "1").run(ROW)[0].shape == (1, 1)  # kept a while for calls on their way
    deciding.unload(MODEL)
    follower._follow()
    assert MODEL not in follower.models and MODEL not in follower.versions
    assert Registry(settings).versions == {}  # a worker restarted now serves what the API worker serves


def test_an_answer_from_a_version_this_process_never_loaded_is_named_by_its_card(two_versions):
    registry = Registry(Settings(models_dir=two_versions))
    assert registry.answered_by(MODEL, 2.0) is registry.get(MODEL)
    assert registry.answered_by(MODEL, 1.0).summary["version"] == "1"  # published, never loaded here


def test_a_card_published_under_another_number_is_refused(two_versions):
    card_path = two_versions / MODEL / "2" / layout.CARD
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "version": "5"}))
    with pytest.raises(ModelLoadError, match="says version '5' but is published as version 2"):
        Registry(Settings(models_dir=two_versions))


def test_the_cards_kept_to_name_late_answers_are_bounded(two_versions, monkeypatch):
    from serving.repository import registry as registry_module

    monkeypatch.setattr(registry_module, "RETIRED_KEPT", 2)
    registry = Registry(Settings(models_dir=two_versions))
    card = registry.get(MODEL).card
    for index in range(5):
        registry._retire(registry_module.LoadedModel(name=f"model-{index}", card=card))
    assert [name for name, _number in registry.retired] == ["model-3", "model-4"]  # the oldest went first
