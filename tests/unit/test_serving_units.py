"""Serving logic that needs no server: settings, provider choice, error shape, model verification."""

from __future__ import annotations

import json
import shutil

import pytest

from serving.errors import normalize
from serving.repository import card as contract
from serving.repository.catalog import CLASSICAL_DIGIT_MODELS
from serving.repository.layout import card_file, model_names, newest
from serving.repository.registry import ModelLoadError, Registry, verify_models
from serving.repository.sessions import CPU, CUDA, batching_pays, providers_for
from serving.settings import Settings
from tests.model_copies import edited_copy


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("ZOOSERVE_DEVICE", "CPU")
    monkeypatch.setenv("ZOOSERVE_THREADS", "2")
    monkeypatch.setenv("ZOOSERVE_MODELS", "a, b")
    monkeypatch.setenv("ZOOSERVE_CORS_ORIGINS", "http://a.test,")
    settings = Settings.from_env()
    assert (settings.device, settings.intra_op_threads, settings.required_models) == ("cpu", 2, ("a", "b"))
    limit = settings.timeout_seconds  # a configured default, not a measured time
    assert settings.cors_origins == ("http://a.test",) and limit == 600
    assert settings.batching == "auto"
    monkeypatch.setenv("ZOOSERVE_BATCHING", "OFF")
    assert Settings.from_env().batching == "off"
    for variable, value in (("ZOOSERVE_BATCHING", "maybe"), ("ZOOSERVE_DEVICE", "tpu"),
                            ("ZOOSERVE_MAX_IMAGES", "65")):  # 65: over the request schemas' own ceiling
        with monkeypatch.context() as just_this:
            just_this.setenv(variable, value)
            with pytest.raises(ValueError, match=variable):
                Settings.from_env()


@pytest.mark.parametrize("device, available, gpu, expected", [
    ("auto", [CUDA, CPU], False, [CPU]),  # onnxruntime-gpu on a CPU-only host
    ("auto", [CUDA, CPU], True, [(CUDA, {"device_id": 0}), CPU]),
    ("auto", [CPU], True, [CPU]),
    ("cpu", [CUDA, CPU], True, [CPU]),
    ("cuda", [CUDA, CPU], True, [(CUDA, {"device_id": 0}), CPU]),
])
def test_provider_choice(device, available, gpu, expected):
    assert providers_for(Settings(device=device), available, gpu) == expected


@pytest.mark.parametrize("batching, device, expected", [("auto", "cpu", False), ("on", "cpu", True),
                                                        ("off", "auto", False)])
def test_batching_is_on_where_it_pays(batching, device, expected):
    assert batching_pays(Settings(batching=batching, device=device)) is expected


def test_cuda_requested_without_a_gpu_is_an_error():
    with pytest.raises(RuntimeError, match="ZOOSERVE_DEVICE=cuda"):
        providers_for(Settings(device="cuda"), [CUDA, CPU], gpu=False)


def test_validation_errors_name_the_field():
    body = json.dumps({"error": "1 validation error for X", "detail": [
        {"type": "less_than_equal", "loc": ["houses", 0, "Latitude"], "msg": "Input should be <= 42.5"}]})
    shaped = normalize(400, body.encode())
    assert shaped["error"] == "houses.0.Latitude: Input should be <= 42.5"
    assert shaped["detail"][0]["field"] == "houses.0.Latitude"


@pytest.mark.parametrize("body, expected", [
    (b'[{"error": "bad media type"}]', {"error": "bad media type"}),  # BentoML's list-wrapped errors
    (b"Not Found", {"error": "Not Found"}),
    (b"", {"error": "Request Entity Too Large"}),
    (b'{"detail": "Method Not Allowed"}', {"error": "Method Not Allowed"}),
])
def test_every_error_body_gets_one_shape(body, expected):
    assert normalize(413, body) == expected


def test_registry_refuses_a_tampered_graph(trained_models, tmp_path):
    models = shutil.copytree(trained_models, tmp_path / "models")
    verify_models(Settings(models_dir=models))
    with (newest(models / "house-price-mlp") / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="house-price-mlp.*sha256"):
        verify_models(Settings(models_dir=models))


def test_every_exported_card_is_the_contract(trained_models):
    for card_path in (card_file(trained_models, name) for name in model_names(trained_models)):
        card = contract.validate(json.loads(card_path.read_text()), str(card_path))
        assert card.schema_version == contract.SCHEMA_VERSION and card.graphs["model"].inputs


@pytest.mark.parametrize("name, edit, field", [
    ("diffusion", lambda card: card["sampling"].update(steps_default=card["sampling"].pop("default_steps")),
     "sampling.ddim.default_steps: Field required"),
    ("mnist-cnn", lambda card: card.pop("labels"), "image-classification cards need labels"),
    ("house-price-gbm", lambda card: card["graphs"]["model"]["inputs"][0].update(dtype="complex64"),
     "graphs.model.inputs.0.dtype"),
    ("vae", lambda card: card.update(schema_version=99), "schema_version"),
    ("vae", lambda card: card["sampling"]["prior"].update(graph="flow"), "'flow' is not among the graphs"),
    ("gan", lambda card: card["sampling"].update(label_weights=[0.5, 0.5]), "label_weights: needs label_input"),
    ("gan", lambda card: card["sampling"].update(label_input="digit"), "'digit' is not an input of the model graph"),
    ("gan-conditional", lambda card: card["sampling"].pop("label_input"), "a conditional latent model takes the digit"),
    ("gan-conditional", lambda card: card["sampling"].update(label_weights=[1.2, -0.2]),
     "greater than or equal to 0"),
], ids=["renamed sampling key", "classifier without labels", "unknown dtype", "newer schema", "unknown prior graph",
        "label weights without a label input", "label input not in the graph", "conditional without its digit",
        "negative label weight"])
def test_a_card_that_breaks_the_contract_stops_start_up_naming_the_field(trained_models, tmp_path, name, edit, field):
    models = edited_copy(trained_models, tmp_path, name, lambda _dir, card: [edit(card), card][1])  # edits in place
    with pytest.raises(ModelLoadError, match="not schema version") as caught:
        Registry(Settings(models_dir=models))
    assert field in str(caught.value) and name in str(caught.value)


def test_registry_needs_required_models(trained_models):
    with pytest.raises(ModelLoadError, match="no-such-model"):
        Registry(Settings(models_dir=trained_models, required_models=("no-such-model",)))


def test_registry_loads_and_warms_up(trained_models):
    registry = Registry(Settings(models_dir=trained_models, device="cpu"))
    assert set(registry.models) == {"house-price-gbm", "house-price-mlp", "passengers", "mnist-cnn", "transfer-cnn",
                                    "vae", "gan", "vae-conditional", "gan-conditional", "gan-wgan-gp", "diffusion",
                                    *CLASSICAL_DIGIT_MODELS}
    assert registry.get("house-price-gbm").sessions["model"].get_providers() == [CPU]


def test_registry_builds_sessions_only_where_the_model_runs(trained_models):
    registry = Registry(Settings(models_dir=trained_models), runs_here=lambda name: name == "mnist-cnn")
    assert set(registry.get("mnist-cnn").sessions) == {"model", "novelty"}  # the served graph and its novelty score
    assert registry.get("house-price-gbm").sessions == {}
    assert registry.get("house-price-gbm").card.name == "house-price-gbm"  # cards are always read
    with pytest.raises(LookupError, match="not loaded"):
        registry.get("no-such-model")


def test_api_key_is_read_but_never_printed(monkeypatch):
    monkeypatch.setenv("ZOOSERVE_API_KEY", "hunter2")
    monkeypatch.setenv("ZOOSERVE_MAX_BODY_BYTES", "1000")
    settings = Settings.from_env()
    assert settings.api_key == "hunter2" and settings.max_body_bytes == 1000
    assert "hunter2" not in repr(settings)
    monkeypatch.delenv("ZOOSERVE_API_KEY")
    assert Settings.from_env().api_key is None


def test_a_silent_fall_back_to_cpu_is_refused(tmp_path):
    from serving.repository.sessions import check_providers

    check_providers([CPU], [CPU], tmp_path)
    check_providers([(CUDA, {"device_id": 0}), CPU], [CUDA, CPU], tmp_path)
    with pytest.raises(RuntimeError, match="CUDA was requested"):
        check_providers([(CUDA, {"device_id": 0}), CPU], [CPU], tmp_path)


def test_the_digits_of_a_conditional_latent_model():
    """A requested digit for every sample; none requested: digits from the seed, replayable, and
    no digits at all for an unconditional model."""
    from serving.inference.generation import sample_digits

    twin = contract.LatentSampling(kind="latent", input="z", latent_dim=4, output_range=(0.0, 1.0),
                                   label_input="digit")
    assert sample_digits(twin, seed=1, n=3, digit=7).tolist() == [7, 7, 7]
    drawn = sample_digits(twin, seed=1, n=200, digit=None)
    assert drawn.dtype.name == "int64" and set(drawn.tolist()) == set(range(10))
    assert drawn.tolist() == sample_digits(twin, seed=1, n=200, digit=None).tolist()
    assert drawn.tolist() != sample_digits(twin, seed=2, n=200, digit=None).tolist()
    assert sample_digits(twin.model_copy(update={"label_input": None}), seed=1, n=3, digit=None) is None
