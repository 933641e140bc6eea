"""`/digits/classify` and `/images/classify` over HTTP: real digits and photos, bad uploads."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from serving.inference import images
from serving.repository.layout import newest
from training.data import load_image_folder, mnist_arrays

from tests.pictures import png, png_header

from .conftest import refused_naming, served_graph


def _digit_upload(index: int, image: np.ndarray) -> bytes:
    """Half the digits black-on-white, every third one resized: what real uploads look like."""
    picture = Image.fromarray(255 - image if index % 2 else image)
    if index % 3 == 0:
        picture = picture.resize((28 + 4 * (index % 17), 28 + 4 * (index % 17)), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def test_two_hundred_real_digits_in_any_polarity_and_size(client):
    x, y = mnist_arrays(train=False)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(y), 200, replace=False)

    def classify(position: int) -> int:
        index = int(picks[position])
        response = client.post("/digits/classify", files={"image": ("digit.png", _digit_upload(position, x[index]),
                                                                    "image/png")})
        assert response.status_code == 200, response.text
        body = response.json()
        assert abs(sum(body["probabilities"]) - 1.0) < 1e-4
        odd = sum(body["probabilities"][1::2])  # parity comes from the probability mass, not the argmax
        assert body["parity"]["label"] == ("odd" if odd >= 0.5 else "even")
        assert body["parity"]["probability"] == pytest.approx(max(odd, 1 - odd), abs=1e-5)
        return body["digit"]

    with ThreadPoolExecutor(max_workers=8) as pool:  # concurrent: exercises adaptive batching
        predicted = list(pool.map(classify, range(200)))
    accuracy = float(np.mean(np.array(predicted) == y[picks]))
    assert accuracy >= 0.97, accuracy


def test_pixels_json_equals_the_png_upload(client, trained_models):
    x, _ = mnist_arrays(train=False)
    as_json = client.post("/digits/classify", json={"pixels": x[0].tolist()}).json()
    as_png = client.post("/digits/classify", files={"image": ("d.png", png(x[0]), "image/png")}).json()
    np.testing.assert_allclose(as_json["probabilities"], as_png["probabilities"], atol=1e-6)
    card = json.loads((newest(trained_models / "mnist-cnn") / "card.json").read_text())
    served = served_graph(card)
    session = ort.InferenceSession(str(newest(trained_models / "mnist-cnn") / served["file"]))
    logits = session.run(None, {"image": images.to_mnist(Image.fromarray(x[0]))[None]})[0][0]
    expected = _calibrated(logits, card)
    np.testing.assert_allclose(as_json["probabilities"], expected, atol=1e-5)
    assert as_json["model"] == {"name": "mnist-cnn", "version": card["version"], "sha256": served["sha256"]}


def _calibrated(logits: np.ndarray, card: dict) -> np.ndarray:
    """The probabilities the service answers: softmax at the card's temperature."""
    scaled = logits / card["probability_calibration"]["temperature"]
    return np.exp(scaled - scaled.max()) / np.exp(scaled - scaled.max()).sum()


def test_photos_equal_in_process_onnx_runtime(client, trained_models):
    card = json.loads((newest(trained_models / "transfer-cnn") / "card.json").read_text())
    prep = card["preprocessing"]
    session = ort.InferenceSession(str(newest(trained_models / "transfer-cnn") / served_graph(card)["file"]))
    for path, _ in load_image_folder("val").samples[::30]:
        with open(path, "rb") as handle:
            response = client.post("/images/classify", files={"image": ("p.jpg", handle, "image/jpeg")},
                                   data={"top_k": "2"})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["label"] for p in predictions] != [] and len(predictions) == 2
        batch = images.to_classifier_input(Image.open(path), prep["resize"], prep["crop"], prep["mean"], prep["std"])
        probs = _calibrated(session.run(None, {"image": batch[None]})[0][0], card)
        expected = sorted(zip(card["labels"], probs), key=lambda item: -item[1])
        assert [p["label"] for p in predictions] == [label for label, _ in expected]
        np.testing.assert_allclose([p["probability"] for p in predictions], [p for _, p in expected], atol=1e-5)


def test_default_top_k_is_capped_by_the_labels(client):
    path = load_image_folder("val").samples[0][0]
    with open(path, "rb") as handle:
        response = client.post("/images/classify", files={"image": ("p.jpg", handle, "image/jpeg")}, data={"top_k": "1"})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def _bomb() -> bytes:
    return png_header(8000, 6000)


BAD_UPLOADS = {
    "not an image": (b"this is text", 400, "not an image"),
    "truncated file": (png(np.full((300, 300), 200, np.uint8))[:200], 400, "truncated"),
    "empty body": (b"", 400, "empty"),
    "zero-size image": (png_header(0, 28), 400, "image"),
    "more than 10 MB": (b"\xff" * (10 * 1024 * 1024 + 1), 413, "byte limit"),
    "more than 40 megapixels": (_bomb(), 413, "megapixel"),
}


@pytest.mark.parametrize("route", ["/digits/classify", "/images/classify"])
@pytest.mark.parametrize("data, status, message", BAD_UPLOADS.values(), ids=BAD_UPLOADS.keys())
def test_bad_uploads(client, route, data, status, message):
    response = client.post(route, files={"image": ("upload.png", data, "image/png")})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


BAD_JSON = {
    "wrong shape": ({"pixels": [[0] * 28] * 27}, "pixels"),
    "ragged rows": ({"pixels": [[0] * 28] * 27 + [[0] * 5]}, "pixels.27"),
    "above 255": ({"pixels": [[300] * 28] * 28}, "pixels.0.0"),
    "negative": ({"pixels": [[-1] * 28] * 28}, "pixels.0.0"),
    "strings": ({"pixels": [["7"] * 28] * 28}, "pixels.0.0"),
    "blank digit": ({"pixels": [[0] * 28] * 28}, "pixels"),
    "nothing sent": ({}, "pixels"),
    "extra field": ({"pixels": [[0] * 28] * 28, "colour": "red"}, "colour"),
}


@pytest.mark.parametrize("payload, field", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_bad_pixels(client, payload, field):
    refused_naming(client.post("/digits/classify", json=payload), field)


@pytest.mark.parametrize("top_k", ["0", "3", "many"])
def test_top_k_out_of_range(client, top_k):
    path = load_image_folder("val").samples[0][0]
    with open(path, "rb") as handle:
        response = client.post("/images/classify", files={"image": ("p.jpg", handle, "image/jpeg")},
                               data={"top_k": top_k})
    assert response.status_code == 400 and response.json()["error"].startswith("top_k")


def test_serving_continues_after_bad_uploads(client):
    for data, _, _ in BAD_UPLOADS.values():
        client.post("/digits/classify", files={"image": ("u.png", data, "image/png")})
    assert client.get("/readyz").status_code == 200
    x, _ = mnist_arrays(train=False)
    assert client.post("/digits/classify", json={"pixels": x[1].tolist()}).status_code == 200
