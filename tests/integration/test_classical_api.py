"""The classical digit classifiers behind `/digits/classify` (`model`) and `/v2`: the service's
answers are what their ONNX graphs give in-process for the same preprocessed digit."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from serving.inference import images
from serving.repository.catalog import CLASSICAL_DIGIT_MODELS
from serving.repository.layout import newest
from training.data import mnist_arrays

from tests.pictures import png


@pytest.mark.parametrize("name", CLASSICAL_DIGIT_MODELS)
def test_a_classical_model_answers_like_its_graph(client, trained_models, name):
    digits, labels = mnist_arrays(train=False)
    card = json.loads((newest(trained_models / name) / "card.json").read_text())
    session = ort.InferenceSession(str(newest(trained_models / name) / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    for index in range(3):
        picture = 255 - digits[index]  # black on white, as a photo of paper
        flat = images.to_mnist(Image.fromarray(picture)).reshape(1, -1)
        expected = session.run(["probabilities"], {"image": flat})[0][0]
        response = client.post("/digits/classify", files={"image": ("d.png", png(picture), "image/png")},
                               data={"model": name})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == {"name": name, "version": card["version"], "sha256": card["graphs"]["model"]["sha256"]}
        np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
        assert body["digit"] == int(expected.argmax())
        infer = client.post(f"/v2/models/{name}/infer", json={"inputs": [
            {"name": "image", "shape": [1, 784], "datatype": "FP32", "data": flat.ravel().tolist()}]})
        assert infer.status_code == 200, infer.text
        outputs = {output["name"]: output["data"] for output in infer.json()["outputs"]}
        np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-6)


def test_pixels_take_a_model_too_and_an_unknown_one_is_a_400(client):
    pixels = mnist_arrays(train=False)[0][0].astype(float).tolist()
    assert client.post("/digits/classify", json={"pixels": pixels, "model": "mnist-forest"}).json()["model"]["name"] \
        == "mnist-forest"
    refused = client.post("/digits/classify", json={"pixels": pixels, "model": "mnist-svm"})
    assert refused.status_code == 400 and refused.json()["detail"][0]["field"] == "model"
