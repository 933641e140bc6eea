"""The Open Inference Protocol (KServe v2 / Triton REST) over every model in the registry.

Generic clients (Triton and KServe client libraries, their perf tools) speak this protocol, so
each model's primary graph is exposed with its exported input and output tensors. The app is
plain Starlette; ``OipMiddleware`` hands it every ``/v2`` path of the BentoML service, and the
handlers find the registry on the running service instance.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import anyio
import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ServiceError, error_for, error_response
from .registry import LoadedModel, ModelNotLoaded, Registry
from .settings import Settings

SERVER_NAME, PROTOCOL_VERSION = "zooserve", "2"
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64), "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_DATATYPE = {dtype.name: name for name, dtype in DATATYPES.items()}
# JSON values NumPy may read for each target kind: no strings, no floats into integers.
ACCEPTED_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}


class ProtocolError(ServiceError):
    """A request the protocol says to refuse: answered as ``{"error": ...}`` with ``status``."""


def _registry() -> Registry:
    return bentoml.get_current_service().registry


def _model(request: Request) -> LoadedModel:
    name = request.path_params["name"]
    try:
        model = _registry().get(name)
    except ModelNotLoaded:
        raise ProtocolError(f"model '{name}' is not served here", status=404) from None
    version = request.path_params.get("version")
    if version is not None and version != model.card["version"]:
        raise ProtocolError(f"model '{name}' has no version '{version}' (served: {model.card['version']})", 404)
    return model


def _tensor_metadata(spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": spec["name"], "datatype": NUMPY_TO_DATATYPE[spec["dtype"]], "shape": spec["shape"]}


def _handler(fn: Callable) -> Callable:
    """Answer a refused request with the protocol's error object (the service's one shape)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except Exception as exc:
            error = error_for(exc)
            if error is None:
                raise
            return error_response(error)

    return endpoint


async def server_metadata(_request: Request) -> Response:
    return JSONResponse({"name": SERVER_NAME, "version": PROTOCOL_VERSION, "extensions": []})


async def server_live(_request: Request) -> Response:
    return JSONResponse({"live": True})


async def server_ready(_request: Request) -> Response:
    ready = bool(_registry().models)
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


async def model_metadata(request: Request) -> Response:
    model = _model(request)
    session = model.sessions["model"]
    return JSONResponse({
        "name": model.name,
        "versions": [model.card["version"]],
        "platform": "onnxruntime_onnx",
        "inputs": [_tensor_metadata(spec) for spec in model.input_spec()],
        "outputs": [_tensor_metadata(spec) for spec in model.card["graphs"]["model"]["outputs"]],
        "parameters": {"device": _registry().settings.device, "providers": session.get_providers(),
                       "sha256": model.card["graphs"]["model"]["sha256"]},
    })


async def model_ready(request: Request) -> Response:
    model = _model(request)
    return JSONResponse({"name": model.name, "ready": "model" in model.sessions})


def _parse_input(entry: Any, spec: dict[str, Any], limits: Settings = Settings()) -> np.ndarray:
    """One request tensor -> a NumPy array of the graph's dtype and a compatible shape."""
    name = spec["name"]
    if not isinstance(entry, dict) or not {"name", "shape", "datatype", "data"} <= entry.keys():
        raise ProtocolError(f"input '{name}' needs name, shape, datatype and data")
    if not isinstance(entry.get("parameters", {}), dict):
        raise ProtocolError(f"input '{name}': parameters must be an object")
    if entry.get("parameters", {}).get("binary_data_size") is not None:
        raise ProtocolError("the binary tensor data extension is not supported; send JSON data")
    shape, datatype = entry["shape"], entry["datatype"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                               for d in shape):
        raise ProtocolError(f"input '{name}': shape must be a list of non-negative integers, got {shape!r}")
    _check_size(name, shape, limits)
    expected = NUMPY_TO_DATATYPE[spec["dtype"]]
    if datatype != expected:
        raise ProtocolError(f"input '{name}': datatype {datatype!r} does not match the model's {expected}")
    if len(shape) != len(spec["shape"]) or any(want not in (-1, got) for want, got in zip(spec["shape"], shape)):
        raise ProtocolError(f"input '{name}': shape {shape} does not match the model's {spec['shape']} "
                            "(-1: any size)")
    try:
        raw = np.asarray(entry["data"])
    except ValueError:
        raise ProtocolError(f"input '{name}': data is ragged; send a flat list or equal-length nested lists") from None
    target = DATATYPES[datatype]
    if raw.size and raw.dtype.kind not in ACCEPTED_KINDS[target.kind]:
        raise ProtocolError(f"input '{name}': data holds {raw.dtype.kind!r}-kind values, not {datatype}")
    if raw.size and target.kind in "iu" and (raw.min() < np.iinfo(target).min or raw.max() > np.iinfo(target).max):
        raise ProtocolError(f"input '{name}': values outside the {datatype} range")
    flat = raw.astype(target).ravel()
    if flat.size != math.prod(shape):
        raise ProtocolError(f"input '{name}': {flat.size} values do not fill shape {shape}")
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        raise ProtocolError(f"input '{name}': data must be finite")
    return flat.reshape(shape)


def _check_size(name: str, shape: list[int], limits: Settings) -> None:
    """Refuse a tensor over the configured rows or values before any memory is spent on it: one
    12 MB request of 8,000 digits took a worker from 209 MB to 2 GB, for good (issue 13)."""
    if shape and shape[0] > limits.max_rows:
        raise ProtocolError(f"input '{name}': {shape[0]} rows is over the {limits.max_rows} row limit "
                            "(ZOOSERVE_MAX_ROWS); split the request", status=413)
    if math.prod(shape) > limits.max_elements:
        raise ProtocolError(f"input '{name}': {math.prod(shape)} values is over the {limits.max_elements} value "
                            "limit (ZOOSERVE_MAX_ELEMENTS); split the request", status=413)


def _names(entries: Any, field: str) -> list[Any]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                                for e in entries):
        raise ProtocolError(f"'{field}' must be a list of objects, each with a string 'name'")
    return [entry["name"] for entry in entries]


async def infer(request: Request) -> Response:
    model = _model(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise ProtocolError("request body is not valid JSON (or is nested too deeply)") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ProtocolError("request needs a non-empty 'inputs' list")
    if not isinstance(body.get("parameters", {}), dict):
        raise ProtocolError("'parameters' must be an object")
    specs = {spec["name"]: spec for spec in model.input_spec()}
    names = _names(body["inputs"], "inputs")
    if len(set(names)) != len(names) or set(names) != set(specs):
        raise ProtocolError(f"inputs must be exactly {sorted(specs)}, got {names}")
    limits = _registry().settings
    feeds = {entry["name"]: _parse_input(entry, specs[entry["name"]], limits) for entry in body["inputs"]}
    output_specs = model.card["graphs"]["model"]["outputs"]
    wanted = _names(body.get("outputs") or [], "outputs")
    available = [spec["name"] for spec in output_specs]
    if any(name not in available for name in wanted):
        raise ProtocolError(f"outputs must be among {available}, got {wanted}")
    try:
        results = await anyio.to_thread.run_sync(model.run, feeds)
    except Exception as error:  # ONNX Runtime rejects what the metadata allowed (e.g. an empty batch)
        raise ProtocolError(f"inference failed: {error}") from None
    outputs = [{"name": name, "datatype": NUMPY_TO_DATATYPE[value.dtype.name], "shape": list(value.shape),
                "data": value.ravel().tolist()}
               for name, value in zip(available, results) if not wanted or name in wanted]
    answer = {"model_name": model.name, "model_version": model.card["version"], "outputs": outputs}
    if "id" in body:
        answer["id"] = body["id"]
    return JSONResponse(answer)


def _routes() -> list[Route]:
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [Route("/v2", _handler(server_metadata)), Route("/v2/health/live", _handler(server_live)),
              Route("/v2/health/ready", _handler(server_ready))]
    for prefix in (model, versioned):
        routes += [Route(prefix, _handler(model_metadata)), Route(f"{prefix}/ready", _handler(model_ready)),
                   Route(f"{prefix}/infer", _handler(infer), methods=["POST"])]
    return routes


oip_app = Starlette(routes=_routes())


class OipMiddleware:
    """Hands ``/v2`` paths to the protocol app; everything else goes on to BentoML."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/v2" or path.startswith("/v2/")):
            await oip_app(scope, receive, send)
        else:
            await self.app(scope, receive, send)
