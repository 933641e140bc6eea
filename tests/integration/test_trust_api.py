"""Answers a person can trust, over HTTP against the real server: explanations with known answers,
out-of-distribution flags on obvious foreign inputs, and the served model cards."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from bench.explanations import erasure
from tests.pictures import png
from serving.repository.layout import newest
from training import foreign
from training.data import HOUSING_FEATURES, california_housing_split, mnist_arrays

EXAMPLE = {"MedInc": 8.3252, "HouseAge": 41.0, "AveRooms": 6.984, "AveBedrms": 1.024, "Population": 322.0,
           "AveOccup": 2.556, "Latitude": 37.88, "Longitude": -122.23}


def _test_houses(count: int) -> list[dict]:
    return [dict(zip(HOUSING_FEATURES, map(float, row))) for row in california_housing_split().x_test[:count]]


@pytest.mark.parametrize("model", ["gbm", "mlp"])
def test_attributions_add_up_to_the_prediction(client, model):
    houses = _test_houses(8)
    explained = client.post("/house-price/explain", json={"houses": houses, "model": model})
    assert explained.status_code == 200, explained.text
    predicted = client.post("/house-price/predict", json={"houses": houses, "model": model}).json()
    for explanation, prediction in zip(explained.json()["explanations"], predicted["predictions"], strict=True):
        assert list(explanation["attributions"]) == list(HOUSING_FEATURES)
        assert explanation["baseline"] + sum(explanation["attributions"].values()) == pytest.approx(
            explanation["value"], abs=1e-3)
        assert explanation["value"] == pytest.approx(prediction["value"], abs=1e-5)
    assert explained.json()["model"] == predicted["model"]


@pytest.mark.parametrize("model", ["gbm", "mlp"])
def test_a_house_richer_in_one_feature_owes_its_higher_price_to_that_feature(client, model):
    poorer, richer = {**EXAMPLE, "MedInc": 3.0}, {**EXAMPLE, "MedInc": 8.0}
    body = client.post("/house-price/explain", json={"houses": [poorer, richer], "model": model}).json()
    low, high = body["explanations"]
    assert high["value"] > low["value"]
    change = {name: high["attributions"][name] - low["attributions"][name] for name in HOUSING_FEATURES}
    assert max(change, key=lambda name: abs(change[name])) == "MedInc"
    assert change["MedInc"] > 0.5 * (high["value"] - low["value"])


def test_explain_takes_the_predict_body_and_refuses_what_it_refuses(client):
    assert client.post("/house-price/explain", json={"houses": [EXAMPLE], "level": 0.8}).status_code == 200
    too_many = client.post("/house-price/explain", json={"houses": [EXAMPLE] * 9})
    assert too_many.status_code == 400 and too_many.json()["detail"][0]["field"] == "houses"
    unknown = client.post("/house-price/explain", json={"houses": [EXAMPLE], "model": "forest"})
    assert unknown.status_code == 400 and unknown.json()["detail"][0]["field"] == "model"


def test_houses_outside_the_training_data_are_flagged_and_named(client):
    odd = {**EXAMPLE, "MedInc": 80.0}
    body = client.post("/house-price/predict", json={"houses": [EXAMPLE, odd]}).json()
    usual, unusual = (prediction["out_of_distribution"] for prediction in body["predictions"])
    assert not usual["flagged"] and usual["outside_training_range"] == []
    assert unusual["flagged"] and unusual["outside_training_range"] == ["MedInc"]
    assert unusual["score"] > unusual["threshold"] > usual["score"]
    flags = [p["out_of_distribution"]["flagged"]
             for p in client.post("/house-price/predict", json={"houses": _test_houses(400)}).json()["predictions"]]
    assert np.mean(flags) < 0.05  # the threshold flags 1% of the calibration rows


def _classify_digit(client, picture: Image.Image) -> dict:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    response = client.post("/digits/classify", files={"image": ("x.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 200, response.text
    return response.json()


def test_digits_pass_and_noise_and_scribbles_are_flagged(client):
    images, _ = mnist_arrays(train=False)
    digits = [_classify_digit(client, Image.fromarray(image))["out_of_distribution"]["flagged"]
              for image in images[:60]]
    made = foreign.drawings(count=30, seed=1)
    noise = [_classify_digit(client, picture)["out_of_distribution"]["flagged"] for picture in made["noise"]]
    scribbles = [_classify_digit(client, picture)["out_of_distribution"]["flagged"] for picture in made["scribbles"]]
    assert np.mean(digits) <= 0.15
    assert np.mean(noise) >= 0.9 and np.mean(scribbles) >= 0.6


def test_noise_sent_as_a_photo_is_flagged(client):
    flags = []
    for picture in foreign.drawings(count=5, seed=2)["noise"]:
        buffer = io.BytesIO()
        picture.convert("RGB").resize((224, 224)).save(buffer, format="PNG")
        body = client.post("/images/classify", files={"image": ("n.png", buffer.getvalue(), "image/png")}).json()
        flags.append(body["out_of_distribution"]["flagged"])
    assert sum(flags) >= 4, flags


def test_the_classical_digit_models_carry_no_flag(client):
    pixels = mnist_arrays(train=False)[0][0].tolist()
    body = client.post("/digits/classify", json={"pixels": pixels, "model": "mnist-logreg"}).json()
    assert body["out_of_distribution"] is None


def test_the_occlusion_map_comes_as_numbers_and_a_heat_map(client):
    image = mnist_arrays(train=False)[0][0]
    response = client.post("/digits/explain", files={"image": ("d.png", png(image), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    classified = client.post("/digits/classify", files={"image": ("d.png", png(image), "image/png")}).json()
    assert body["digit"] == classified["digit"]
    assert body["probability"] == pytest.approx(classified["probabilities"][body["digit"]], abs=1e-5)
    values = np.array(body["occlusion"]["values"])
    assert values.shape == (28, 28) and values.max() > 0
    heat = Image.open(io.BytesIO(base64.b64decode(body["occlusion"]["png"])))
    assert heat.size == (280, 280) and heat.mode == "RGB"


def test_removing_the_ink_the_map_highlights_changes_the_answer(client):
    """The known answer: erasing the strokes with the most evidence (map above half its maximum)
    changes the digit read far more often than erasing as much ink where the map is lowest."""
    changed = erasure(client, mnist_arrays(train=False)[0][:20])
    assert changed["highlighted"] >= 0.3, changed
    assert changed["highlighted"] >= changed["least_evidence"] + 0.2, changed


def test_explain_digits_refuses_like_classify(client):
    refused = client.post("/digits/explain", json={"pixel": [[0] * 28] * 28})
    assert refused.status_code == 400 and {"pixel", "pixels"} <= {item["field"] for item in refused.json()["detail"]}
    neither = client.post("/digits/explain", json={})  # JSON without pixels
    assert neither.status_code == 400 and neither.json()["detail"][0]["field"] == "pixels"


@pytest.mark.parametrize("name", ["house-price-gbm", "mnist-cnn", "passengers"])
def test_each_model_serves_its_whole_card(client, trained_models, name):
    response = client.get(f"/models/{name}/card")
    assert response.status_code == 200, response.text
    served, written = response.json(), json.loads((newest(trained_models / name) / "card.json").read_text())
    assert served == written
    for section in ("intended_use", "out_of_scope", "limitations", "ethical_considerations"):
        assert served["model_card"][section]
    # The energy estimate comes with the assumptions it rests on (its arithmetic: tests/unit/test_trust.py).
    assert "W per busy CPU core" in served["footprint"]["assumptions"] and "co2e_g" in served["footprint"]


def test_an_unknown_card_is_a_404_in_the_one_error_shape(client):
    response = client.get("/models/no-such-model/card")
    assert response.status_code == 404
    assert response.json()["detail"][0]["field"] == "name" and "mnist-cnn" in response.json()["error"]
