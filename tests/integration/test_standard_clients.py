"""`/v2` as the clients users actually run meet it, with their defaults: Triton's HTTP client
(binary tensor data by default, and JSON) and the KServe SDK's REST client; every answer equals
ONNX Runtime run in-process on the same graph."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from serving.repository.layout import newest

from .conftest import served_graph

MODELS = ("house-price-gbm", "mnist-cnn", "diffusion")  # diffusion: its noise predictor, three inputs
DTYPES = {"FP32": np.float32, "INT64": np.int64}


def _feeds(metadata: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {}
    for tensor in metadata["inputs"]:
        shape = [2 if d == -1 else d for d in tensor["shape"]]
        low, high = (0, 10) if tensor["datatype"] == "INT64" else (-1, 1)
        feeds[tensor["name"]] = rng.uniform(low, high, shape).astype(DTYPES[tensor["datatype"]])
    return feeds


def _expected(trained_models, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    card = json.loads((newest(trained_models / name) / "card.json").read_text())
    session = ort.InferenceSession(str(newest(trained_models / name) / served_graph(card)["file"]))
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


@pytest.fixture
def triton_client(server):
    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    yield client
    client.close()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("binary", [True, False], ids=["binary (the default)", "json"])
def test_tritonclient(triton_client, trained_models, name, binary):
    assert triton_client.is_server_ready() and triton_client.is_model_ready(name)
    metadata = triton_client.get_model_metadata(name)
    feeds = _feeds(metadata, np.random.default_rng(0))
    inputs = []
    for tensor in metadata["inputs"]:
        entry = triton.InferInput(tensor["name"], list(feeds[tensor["name"]].shape), tensor["datatype"])
        if binary:
            entry.set_data_from_numpy(feeds[tensor["name"]])  # binary_data=True: the client's default
        else:
            entry.set_data_from_numpy(feeds[tensor["name"]], binary_data=False)
        inputs.append(entry)
    outputs = None if binary else [triton.InferRequestedOutput(o["name"], binary_data=False)
                                   for o in metadata["outputs"]]
    result = triton_client.infer(name, inputs, outputs=outputs)
    for output, reference in _expected(trained_models, name, feeds).items():
        np.testing.assert_allclose(result.as_numpy(output), reference, rtol=1e-5, atol=1e-5)


def test_tritonclient_binary_requests_obey_the_size_bounds(triton_client):
    too_many = triton.InferInput("image", [2000, 1, 28, 28], "FP32")
    too_many.set_data_from_numpy(np.zeros((2000, 1, 28, 28), np.float32))
    with pytest.raises(triton.InferenceServerException, match="row limit"):
        triton_client.infer("mnist-cnn", [too_many])


@pytest.mark.parametrize("name", MODELS)
def test_kserve_rest_client(server, trained_models, name):
    from kserve import InferInput, InferRequest, InferenceRESTClient, RESTConfig

    async def call() -> tuple[dict, dict[str, np.ndarray]]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            assert await client.is_server_ready(server) and await client.is_model_ready(server, name)
            metadata = httpx.get(f"{server}/v2/models/{name}").json()  # the SDK's REST client has no metadata call
            feeds = _feeds(metadata, np.random.default_rng(1))
            inputs = []
            for tensor in metadata["inputs"]:
                entry = InferInput(tensor["name"], list(feeds[tensor["name"]].shape), tensor["datatype"])
                entry.set_data_from_numpy(feeds[tensor["name"]])
                inputs.append(entry)
            response = await client.infer(server, InferRequest(name, inputs, request_id="kserve-1"), model_name=name)
            return feeds, {output.name: output.as_numpy() for output in response.outputs}
        finally:
            await client.close()

    feeds, answers = asyncio.run(call())
    for output, reference in _expected(trained_models, name, feeds).items():
        np.testing.assert_allclose(answers[output], reference, rtol=1e-5, atol=1e-5)
