"""Models in and out of service while the server runs: Triton's model repository extension on
``/v2`` (index, load, unload), which ``tritonclient`` drives at its defaults.

A load (re)reads the model's published versions and brings up those its version policy picks
(the newest by default; a Triton model configuration passed as ``parameters.config`` may set
another), each verified (sha256, ONNX Runtime load, warm-up run) before it takes traffic. A
version that fails leaves what was serving as it was, and the call answers 400 with the cause.
ZooServe's own load parameter ``default_version`` pins the version requests naming none get.
Requests already running on an unloaded version finish on it. The other worker processes follow
within ``registry.WATCH_SECONDS`` (``repository.control``).
"""

from __future__ import annotations

from typing import Any

import anyio
import pydantic_core
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from serving import schemas
from serving.protocol.gateway import Call
from serving.protocol.oip import TAG, ProtocolError, current_registry
from serving.protocol.routing import JSON, Route
from serving.repository.policy import Policy
from serving.repository.registry import KEEP, ModelLoadError, ModelNotLoaded


JSON_WHITESPACE = b" \t\r\n"  # JSON's whitespace: bytes.strip() would also take \x0b and \x0c


def _body(call: Call, form: type[BaseModel]) -> Any:
    """The request's body as ``form`` (an empty body is the form's defaults: ``tritonclient`` sends
    the index request empty); JSON that is not the form is a 400 naming the field."""
    if not call.body.strip(JSON_WHITESPACE):
        return form()
    try:
        data = pydantic_core.from_json(call.body)
    except (ValueError, RecursionError):
        raise ProtocolError("request body is not valid JSON (or is nested too deeply)") from None
    return form.model_validate(data)  # a ValidationError: the gateway answers it naming each field


async def repository_index(call: Call) -> Response:
    entries = current_registry().index()
    if _body(call, schemas.RepositoryIndexRequest).ready:
        entries = [entry for entry in entries if entry["state"] == "READY"]
    return JSONResponse(entries)


async def load(call: Call) -> Response:
    name, parameters = call.params["name"], _body(call, schemas.LoadRequest).parameters
    uploaded = sorted(key for key in (parameters.model_extra or {}) if key.startswith("file:")) if parameters else []
    if uploaded:
        raise ProtocolError(f"loading from files sent with the request ({', '.join(uploaded)}) is not supported: "
                            "publish the model into the models directory (python -m serving.add), then load it")
    # No configuration: the policy of the model's last load (the newest version at first), as in Triton.
    policy = None if parameters is None or parameters.config is None else Policy.from_config(parameters.config)
    pin = parameters.default_version if parameters and "default_version" in parameters.model_fields_set else KEEP
    try:
        versions = await anyio.to_thread.run_sync(current_registry().load, name, policy, pin)
    except ModelNotLoaded as error:
        raise ProtocolError(str(error), status=404) from None
    except ModelLoadError as error:
        raise ProtocolError(str(error)) from None
    registry = current_registry()
    default = registry.models.get(name)  # None where an unload came right after
    return JSONResponse({"name": name, "versions": versions, "default_version": default and default.card.version,
                         "pinned": registry.pins.get(name)})


async def unload(call: Call) -> Response:
    name = call.params["name"]
    _body(call, schemas.UnloadRequest)
    try:
        await anyio.to_thread.run_sync(current_registry().unload, name)
    except ModelNotLoaded as error:
        raise ProtocolError(str(error), status=404) from None
    return JSONResponse({"name": name, "versions": [], "default_version": None,
                         "pinned": current_registry().pins.get(name)})


MANAGE = {"tag": TAG, "admission": None, "body_required": False}
ROUTES = [
    Route("/v2/repository/index", "POST", repository_index, "handler", "Every published model version and its state",
          forms={JSON: schemas.RepositoryIndexRequest}, answers={JSON: schemas.RepositoryIndex},
          answer_note="the index", **MANAGE),
    Route("/v2/repository/models/{name}/load", "POST", load, "handler",
          "Load or reload a model: the versions its version policy picks, each verified before it serves",
          forms={JSON: schemas.LoadRequest}, answers={JSON: schemas.Loaded}, answer_note="loaded", **MANAGE),
    Route("/v2/repository/models/{name}/unload", "POST", unload, "handler",
          "Unload every version of a model; requests already running finish on it",
          forms={JSON: schemas.UnloadRequest}, answers={JSON: schemas.Loaded}, answer_note="unloaded", **MANAGE),
]
