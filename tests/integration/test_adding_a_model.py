"""The "adding a model" guide (docs/adding-a-model.md), followed as written: its code blocks train
and export the toy model, a real server serves it over /v2, and the guide's endpoint, added to
the service, answers through the gateway and appears in the route table and the document."""

from __future__ import annotations

import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "adding-a-model.md"


def _blocks() -> dict[str, str]:
    """The guide's Python blocks, by the file their first comment line names."""
    blocks = re.findall(r"```python\n# ([^\n]+)\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return {where: code for where, code in blocks}


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory) -> Iterator[Path]:
    """Step 1: the guide's family module, trained and exported into a models directory of its own."""
    from training.template import train

    family = types.ModuleType("training.toy_line")
    sys.modules[family.__name__] = family  # as an imported module is: its dataclasses look themselves up there
    try:
        exec(compile(_blocks()["training/toy_line.py"], str(GUIDE), "exec", dont_inherit=True), family.__dict__)
        root = tmp_path_factory.mktemp("toy-models")
        card = train(family.LineRecipe, "quick", seed=0, out_root=root)
        assert card["metrics"]["test_mae"] < 0.1  # the line is learned, measured on the exported graph
        assert card["graphs"]["model"]["parity"]["rows_over_atol"] == 0
        yield root
    finally:
        del sys.modules[family.__name__]


def test_step_2_the_server_serves_it_over_v2(toy_models: Path, tmp_path: Path):
    from tests.integration.conftest import free_port, start_server, stop, wait_ready

    port, log = free_port(), tmp_path / "serve.log"
    process = start_server(toy_models, port, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        answer = httpx.post(f"{url}/v2/models/toy-line/infer", json={"inputs": [
            {"name": "x", "shape": [2, 1], "datatype": "FP32", "data": [0.0, 0.5]}]}).json()
        assert np.allclose(answer["outputs"][0]["data"], [1.0, 2.5], atol=0.1)
        assert [model["name"] for model in httpx.get(f"{url}/models").json()] == ["toy-line"]
    finally:
        stop(process)


def test_step_3_its_endpoint_answers_through_the_gateway(toy_models: Path):
    import asyncio
    import json

    from pydantic import BaseModel, Field  # noqa: F401  (the guide's schema block uses them)

    from serving import routes, schemas, service
    from serving.protocol import openapi
    from serving.protocol.gateway import Gateway
    from serving.protocol.routing import declared
    from serving.repository.registry import Registry
    from serving.settings import Settings

    blocks = _blocks()
    namespace = {**vars(schemas), **vars(service)}

    def run(code: str) -> None:  # as a module of its own would: no annotations postponed by this one
        exec(compile(code, str(GUIDE), "exec", dont_inherit=True), namespace)

    run(blocks["serving/schemas.py"])
    run("class ToyServe(ZooServe):\n" + textwrap.indent(blocks["serving/service.py, in class ZooServe"], "    "))
    settings = Settings(models_dir=toy_models)
    instance = namespace["ToyServe"].__new__(namespace["ToyServe"])
    instance.settings, instance.registry = settings, Registry(settings)
    table = [*routes.table(), *declared(namespace["ToyServe"])]
    gateway = Gateway(table, settings, limits={"predict": 4, "generation": 1}, instance=instance)

    sent: list[dict] = []

    async def call() -> None:
        body = [{"type": "http.request", "body": b'{"x": [0.0, 0.5]}', "more_body": False}]

        async def receive() -> dict:
            return body.pop() if body else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/toy/line", "headers": [], "query_string": b""}
        await gateway(scope, receive, send)

    asyncio.run(call())
    assert sent[0]["status"] == 200
    answer = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert np.allclose(answer["y"], [1.0, 2.5], atol=0.1) and answer["model"]["name"] == "toy-line"
    document = openapi.document(table, instance.registry, settings)
    assert "/toy/line" in document["paths"] and "400" in document["paths"]["/toy/line"]["post"]["responses"]
    assert any(route.path == "/toy/line" for route in table)
