"""`POST /generate/*` over HTTP: seeded determinism, both answer formats, every limit."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
from typing import Callable

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from loadtests.server import free_port, served
from serving.inference import generation
from serving.repository.card import sampling_of
from serving.repository.layout import newest
from training.data import mnist_arrays

from tests.pictures import png

from .conftest import answered_by, refused_naming

GENERATORS = ["vae", "gan", "wgan-gp", "diffusion"]
MODEL = {"wgan-gp": "gan-wgan-gp"}  # the model each /generate/{family} serves, where the names differ


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_bytes(client, name):
    request = {"n": 5, "seed": 42}
    first = client.post(f"/generate/{name}", json=request)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png" and first.headers["x-seed"] == "42"
    assert client.post(f"/generate/{name}", json=request).content == first.content
    assert client.post(f"/generate/{name}", json={"n": 5, "seed": 43}).content != first.content
    assert _pixels(first.content).shape == (2 * 30 + 2, 3 * 30 + 2)  # 5 digits: 2 rows of 3


@pytest.mark.parametrize("name", GENERATORS)
def test_json_answer_names_the_seed_it_chose(client, trained_models, name):
    body = answered_by(client.post(f"/generate/{name}", json={"n": 3, "format": "json"}), trained_models,
                       MODEL.get(name, name))
    assert len(body["images"]) == 3 and all(_pixels(base64.b64decode(i)).shape == (28, 28) for i in body["images"])
    replay = client.post(f"/generate/{name}", json={"n": 3, "format": "json", "seed": body["seed"]}).json()
    assert replay["images"] == body["images"]
    unseeded = client.post(f"/generate/{name}", json={"n": 1})
    assert 0 <= int(unseeded.headers["x-seed"]) <= generation.MAX_SEED


@pytest.mark.parametrize("route, name, knobs", [
    ("vae", "vae", {}), ("gan", "gan", {}), ("wgan-gp", "gan-wgan-gp", {}), ("diffusion", "diffusion", {"steps": 3}),
    ("diffusion", "diffusion", {"steps": 7, "digit": 3, "guidance": 4.0}),
    ("diffusion", "diffusion", {"steps": 2, "digit": 5}),  # the card's default guidance
    ("vae", "vae-conditional", {"digit": 4}), ("gan", "gan-conditional", {"digit": 8})])
def test_answer_equals_in_process_onnx_runtime(client, trained_models, route, name, knobs):
    card = json.loads((newest(trained_models / name) / "card.json").read_text())
    sessions = {key: ort.InferenceSession(str(newest(trained_models / name) / spec["file"]))
                for key, spec in card["graphs"].items()}
    expected = generation.generate(sampling_of(card["sampling"]), sessions, seed=9, n=4, **knobs)
    body = client.post(f"/generate/{route}", json={"n": 4, "seed": 9, "format": "json", **knobs}).json()
    assert body["model"]["name"] == name
    np.testing.assert_array_equal(np.stack([_pixels(base64.b64decode(i)) for i in body["images"]]), expected)


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_a_requested_digit_changes_the_digit_not_the_seed(client, family):
    """The twin draws the digit asked for; the same seed and digit give the same bytes."""
    first = client.post(f"/generate/{family}", json={"n": 3, "seed": 5, "digit": 1})
    assert first.status_code == 200, first.text
    assert first.headers["x-model"].startswith(f"{family}-conditional ")
    assert client.post(f"/generate/{family}", json={"n": 3, "seed": 5, "digit": 1}).content == first.content
    assert client.post(f"/generate/{family}", json={"n": 3, "seed": 5, "digit": 7}).content != first.content


BAD_REQUESTS = {
    "n missing": ({}, "n"),
    "n zero": ({"n": 0}, "n"),
    "n over 64": ({"n": 65}, "n"),
    "n as string": ({"n": "4"}, "n"),
    "negative seed": ({"n": 1, "seed": -1}, "seed"),
    "seed over 32 bits": ({"n": 1, "seed": 2**32}, "seed"),
    "digit 10": ({"n": 1, "digit": 10}, "digit"),
    "unknown format": ({"n": 1, "format": "gif"}, "format"),
    "unknown field": ({"n": 1, "colour": "red"}, "colour"),
}


@pytest.mark.parametrize("payload, field", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
@pytest.mark.parametrize("name", GENERATORS)
def test_limits(client, name, payload, field):
    refused_naming(client.post(f"/generate/{name}", json=payload), field)


DIFFUSION_LIMITS = {
    "steps zero": ({"n": 1, "steps": 0}, "steps"),
    "steps over 1000": ({"n": 1, "steps": 1001}, "steps"),
    "negative guidance": ({"n": 1, "guidance": -0.5}, "guidance"),
    "guidance over 20": ({"n": 1, "guidance": 20.5}, "guidance"),
    "guidance as string": ({"n": 1, "guidance": "2"}, "guidance"),
}


@pytest.mark.parametrize("payload, field", DIFFUSION_LIMITS.values(), ids=DIFFUSION_LIMITS.keys())
def test_diffusion_limits(client, payload, field):
    refused_naming(client.post("/generate/diffusion", json=payload), field)


@pytest.mark.parametrize("name", ["vae", "gan", "wgan-gp"])
@pytest.mark.parametrize("payload, field", [({"n": 1, "steps": 10}, "steps"), ({"n": 1, "guidance": 1.0}, "guidance"),
                                            ({"n": 1, "eta": 1.0}, "eta")])
def test_latent_models_refuse_what_they_cannot_do(client, name, payload, field):
    response = client.post(f"/generate/{name}", json=payload)
    assert response.status_code == 400 and response.json()["error"].startswith(field)


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_a_twin_refuses_the_diffusion_knobs_too(client, name):
    response = client.post(f"/generate/{name}", json={"n": 1, "digit": 3, "steps": 10})
    assert response.status_code == 400 and response.json()["error"].startswith("steps")


def test_the_wgan_gp_draws_no_chosen_digit(client):
    """No conditional twin: a digit is refused by name, and the error says where digits are drawn."""
    response = client.post("/generate/wgan-gp", json={"n": 1, "digit": 3})
    assert response.status_code == 400 and response.json()["error"].startswith("digit"), response.text
    assert client.post("/generate/wgan-gp/jobs", json={"n": 1, "digit": 3}).status_code == 400


def test_guidance_must_be_finite(client):
    response = client.post("/generate/diffusion", content=b'{"n": 1, "guidance": NaN}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"].startswith("guidance"), response.text


def _generations_in_progress(client) -> float:
    """The API worker's own count of `/generate/diffusion` requests in flight (BentoML's gauge)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("bentoml_service_request_in_progress{") and 'endpoint="/generate/diffusion"' in line \
                and 'runner_name="zooserve"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_for_generations(client, until: Callable[[float], bool], polls: int = 3000) -> bool:
    for _ in range(polls):  # bounded: a server that never gets there fails the test instead of hanging it
        if until(_generations_in_progress(client)):
            return True
    return False


def test_classification_answers_while_a_long_diffusion_runs(client, server):
    """Generation runs in its own worker: a long request must not stall the other endpoints. The
    server's gauge says when the generation is in flight, before and after the classifications;
    the generation (64 digits, 1,000 steps: minutes of work) is then dropped by disconnecting."""
    x, _ = mnist_arrays(train=False)
    body = json.dumps({"n": 64, "steps": 1000, "digit": 1}).encode()
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as long:
        long.sendall(b"POST /generate/diffusion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert _wait_for_generations(client, lambda flying: flying >= 1)
        for index in range(5):
            response = client.post("/digits/classify", json={"pixels": x[index].tolist()})
            assert response.status_code == 200, response.text
        assert _generations_in_progress(client) >= 1
    # The caller has gone: the server drops the generation instead of computing it for nobody.
    assert _wait_for_generations(client, lambda flying: flying == 0)


def test_interpolation_between_seeds_ends_on_their_samples(client):
    strip = client.post("/generate/vae/interpolate", json={"seeds": [3, 4], "frames": 6})
    assert strip.status_code == 200, strip.text
    pixels = _pixels(strip.content)
    assert pixels.shape == (32, 6 * 30 + 2)
    first = _pixels(client.post("/generate/vae", json={"n": 1, "seed": 3}).content)
    np.testing.assert_array_equal(pixels[2:30, 2:30], first[2:30, 2:30])  # frame 0 is seed 3's digit


def test_interpolation_between_uploads(client):
    x, _ = mnist_arrays(train=False)
    files = {"start": ("a.png", png(x[0]), "image/png"), "end": ("b.png", png(255 - x[1]), "image/png")}
    strip = client.post("/generate/vae/interpolate", files=files, data={"frames": "4"})
    assert strip.status_code == 200, strip.text
    assert _pixels(strip.content).shape == (32, 4 * 30 + 2)


def test_an_oversized_interpolation_upload_is_named(client):
    x, _ = mnist_arrays(train=False)
    oversized = png(x[0]) + b"\0" * (10 * 1024 * 1024)  # over the 10 MB image limit, under the body limit
    files = {"start": ("a.png", png(x[0]), "image/png"), "end": ("b.png", oversized, "image/png")}
    response = client.post("/generate/vae/interpolate", files=files)
    assert response.status_code == 413 and response.json()["error"].startswith("end: "), response.text


@pytest.mark.parametrize("kwargs, field", [
    ({"json": {}}, "seeds"),
    ({"json": {"seeds": [1]}}, "seeds"),
    ({"json": {"seeds": [1, 2], "frames": 1}}, "frames"),
    ({"json": {"seeds": [1, 2], "frames": 65}}, "frames"),
    ({"files": {"start": ("a.png", png(np.full((28, 28), 255, np.uint8)), "image/png")}}, "end"),
    ({"files": {"start": ("a.png", b"not an image", "image/png"), "end": ("b.png", b"nor this", "image/png")}},
     "start"),
])
def test_interpolation_limits(client, kwargs, field):
    refused_naming(client.post("/generate/vae/interpolate", **kwargs), field)


def test_a_digit_without_the_twin_says_how_to_train_it(trained_models, tmp_path):
    """A server with the GAN and not its conditional twin: a requested digit is a 400 naming the
    field and the command (retrying cannot help); without a digit the GAN answers as ever."""
    models = tmp_path / "models"
    shutil.copytree(trained_models / "gan", models / "gan")
    with served(free_port(), tmp_path / "serve.log", {"ZOOSERVE_MODELS_DIR": str(models)}, core=None) as url:
        asked = httpx.post(url + "/generate/gan", json={"n": 1, "digit": 3}, timeout=30)
        plain = httpx.post(url + "/generate/gan", json={"n": 1}, timeout=30)
    assert asked.status_code == 400 and asked.json()["error"].startswith("digit"), asked.text
    assert "python -m training gan-conditional" in asked.json()["error"]
    assert plain.status_code == 200, plain.text


def test_eta_samples_stochastically_and_the_seed_still_fixes_the_bytes(client):
    body = {"n": 4, "seed": 11, "steps": 20}
    deterministic = client.post("/generate/diffusion", json=body).content
    assert client.post("/generate/diffusion", json={**body, "eta": 0}).content == deterministic
    stochastic = client.post("/generate/diffusion", json={**body, "eta": 1.0})
    assert stochastic.status_code == 200 and stochastic.content != deterministic
    assert client.post("/generate/diffusion", json={**body, "eta": 1.0}).content == stochastic.content
    refused_naming(client.post("/generate/diffusion", json={**body, "eta": 1.5}), "eta")
