"""The Open Inference Protocol (KServe v2 REST), exercised by a client written from the spec."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from serving.repository.layout import model_names, newest

from .conftest import served_graph

DTYPES = {"FP32": np.float32, "INT64": np.int64, "FP16": np.float16, "INT32": np.int32, "UINT8": np.uint8,
          "BOOL": np.bool_}


def _models(trained_models) -> list[str]:
    return model_names(trained_models)


def test_server_endpoints(client):
    assert client.get("/v2").json() == {"name": "zooserve", "version": "2", "extensions": ["binary_tensor_data"]}
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


def test_every_model_has_metadata_and_answers_inference(client, trained_models):
    rng = np.random.default_rng(0)
    for name in _models(trained_models):
        metadata = client.get(f"/v2/models/{name}").json()
        card = json.loads((newest(trained_models / name) / "card.json").read_text())
        assert metadata["name"] == name and metadata["versions"] == [card["version"]]
        assert metadata["parameters"]["providers"] == ["CPUExecutionProvider"]
        assert client.get(f"/v2/models/{name}/ready").json()["ready"] is True
        inputs, feeds = [], {}
        for tensor in metadata["inputs"]:
            shape = [2 if d == -1 else d for d in tensor["shape"]]
            value = rng.uniform(1, 2, shape).astype(DTYPES[tensor["datatype"]])
            feeds[tensor["name"]] = value
            inputs.append({"name": tensor["name"], "shape": shape, "datatype": tensor["datatype"],
                           "data": value.ravel().tolist()})
        response = client.post(f"/v2/models/{name}/infer", json={"id": f"req-{name}", "inputs": inputs})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_name"] == name and body["id"] == f"req-{name}"
        assert metadata["parameters"]["sha256"] == served_graph(card)["sha256"]
        graph = newest(trained_models / name) / served_graph(card)["file"]
        expected = ort.InferenceSession(str(graph)).run(None, feeds)
        assert [o["name"] for o in body["outputs"]] == [o["name"] for o in metadata["outputs"]]
        for output, reference in zip(body["outputs"], expected):
            assert output["shape"] == list(reference.shape)
            np.testing.assert_allclose(np.array(output["data"]).reshape(output["shape"]), reference, rtol=1e-5,
                                       atol=1e-5)


def _house(**entry) -> dict:
    tensor = {"name": "features", "shape": [1, 8], "datatype": "FP32",
              "data": [8.3252, 41.0, 6.984, 1.024, 322.0, 2.556, 37.88, -122.23]}
    return {"inputs": [{**tensor, **entry}]}


def test_nested_data_and_output_selection(client):
    nested = _house(data=[[8.3252, 41.0, 6.984, 1.024, 322.0, 2.556, 37.88, -122.23]])
    flat = client.post("/v2/models/house-price-gbm/infer", json=_house()).json()
    assert client.post("/v2/models/house-price-gbm/infer", json=nested).json()["outputs"] == flat["outputs"]
    digits = {"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.0] * 784}],
              "outputs": [{"name": "features"}]}
    body = client.post("/v2/models/mnist-cnn/infer", json=digits).json()
    assert [o["name"] for o in body["outputs"]] == ["features"] and body["outputs"][0]["shape"] == [1, 256]


ERRORS = {
    "wrong shape": (_house(shape=[1, 7], data=[1.0] * 7), "shape"),
    "data does not fill shape": (_house(shape=[2, 8]), "do not fill"),
    "wrong datatype": (_house(datatype="INT64", data=[1] * 8), "datatype"),
    "unknown datatype": (_house(datatype="COMPLEX"), "datatype"),
    "wrong input name": (_house(name="x"), "inputs must be exactly"),
    "strings as numbers": (_house(data=["8.3"] * 8), "not FP32"),
    "ragged data": (_house(data=[[1.0] * 8, [1.0] * 7]), "ragged"),
    "non-finite": (_house(data=[float("nan")] + [1.0] * 7), "finite"),
    "negative dimension": (_house(shape=[-1, 8]), "non-negative"),
    "binary extension": (_house(parameters={"binary_data_size": 32}), "binary"),
    "no inputs": ({"inputs": []}, "non-empty"),
    "unknown output": ({**_house(), "outputs": [{"name": "nope"}]}, "outputs must be among"),
}


@pytest.mark.parametrize("payload, message", ERRORS.values(), ids=ERRORS.keys())
def test_errors_are_400_with_the_spec_error_object(client, payload, message):
    response = client.post("/v2/models/house-price-gbm/infer", content=json.dumps(payload),
                           headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["error"] and message in body["error"]


def test_malformed_json_and_unknown_models(client):
    response = client.post("/v2/models/house-price-gbm/infer", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/house-price-gbm/versions/0"):
        response = client.get(path)
        assert response.status_code == 404 and "error" in response.json()
    assert client.post("/v2/models/nope/infer", json=_house()).status_code == 404


def test_uint8_range_is_checked():
    from serving.repository.card import Tensor
    from serving.protocol.oip import ProtocolError, _parse_input

    spec = Tensor(name="pixels", dtype="uint8", shape=[-1, 2])
    assert _parse_input({"name": "pixels", "shape": [1, 2], "datatype": "UINT8", "data": [0, 255]}, spec).tolist() == [[0, 255]]
    with pytest.raises(ProtocolError, match="range"):
        _parse_input({"name": "pixels", "shape": [1, 2], "datatype": "UINT8", "data": [0, 256]}, spec)
    with pytest.raises(ProtocolError, match="not UINT8"):
        _parse_input({"name": "pixels", "shape": [1, 2], "datatype": "UINT8", "data": [0.5, 1.0]}, spec)


def test_a_generative_graphs_refusal_comes_back_from_the_generation_worker_as_a_400(client):
    """The generative models run in the generation worker alone; ONNX Runtime's refusal there (a
    digit the conditional GAN has no embedding for) is the caller's 400, in ONNX Runtime's words."""
    z = {"name": "z", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}
    for digit, status in ((3, 200), (99, 400)):
        response = client.post("/v2/models/gan-conditional/infer", json={
            "inputs": [z, {"name": "digit", "shape": [1], "datatype": "INT64", "data": [digit]}]})
        assert response.status_code == status, response.text
    assert list(response.json()) == ["error"] and "out of data bounds" in response.json()["error"]
