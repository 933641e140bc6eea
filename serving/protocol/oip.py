"""The Open Inference Protocol (KServe v2 / Triton REST) over every model in the registry.

Generic clients (Triton and KServe client libraries, their perf tools) speak this protocol, so
each model's primary graph is exposed with its exported input and output tensors. Its routes are
declared in ``ROUTES`` and answered by the ``gateway``; the handlers find the registry on the
running service instance. Tensors travel as JSON or, with
Triton's binary tensor data extension (what ``tritonclient`` sends by default), as raw
little-endian bytes after the JSON header, both ways.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from typing import Any

import anyio
import bentoml
import numpy as np
import pydantic_core
from starlette.responses import JSONResponse, Response

from serving import schemas
from serving.errors import REQUEST_ID, ServiceError, Unavailable
from serving.monitoring.predictions import PredictionLog, issue_for
from serving.protocol.gateway import PREDICTION_ID, Call
from serving.protocol.routing import BINARY, JSON, Route
from serving.repository.card import Tensor
from serving.repository.registry import LoadedModel, ModelLoading, ModelNotLoaded, ModelTraining, Registry
from serving.repository.sessions import providers_for
from serving.settings import Settings

SERVER_NAME, PROTOCOL_VERSION = "zooserve", "2"
# Triton's binary tensor data extension (BYTES aside): the default of Triton's own HTTP client.
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "inference-header-content-length"
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64), "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_DATATYPE = {dtype.name: name for name, dtype in DATATYPES.items()}
DTYPE_TO_DATATYPE = {dtype: name for name, dtype in DATATYPES.items()}  # by dtype: ``dtype.name`` is slow
# Inputs up to this many values run on the event loop: a house row or a digit takes ONNX Runtime
# well under a millisecond, less than the hand-off to a thread costs (about a third of a one-row
# /v2 request's CPU, ``bench.profile_worker``); larger ones (photos, batches) run in a thread so the
# loop goes on reading other requests meanwhile.
INLINE_VALUES = 4096
# JSON values NumPy may read for each target kind: no strings, no floats into integers.
ACCEPTED_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}


class ProtocolError(ServiceError):
    """A request the protocol says to refuse: answered as ``{"error": ...}`` with ``status``."""


@functools.cache
def current_registry() -> Registry:
    """The running service's registry; looked up once (BentoML's lookup costs more than the inference
    of a house row) since a worker runs one service instance for its whole life."""
    return bentoml.get_current_service().registry


@functools.cache
def current_log() -> PredictionLog | None:
    """The running service's prediction log (looked up once, as the registry)."""
    return getattr(bentoml.get_current_service(), "predictions", None)


def _model(call: Call) -> LoadedModel:
    try:
        return current_registry().get(call.params["name"], call.params.get("version"))
    except (ModelNotLoaded, ModelTraining, ModelLoading) as error:  # not loaded yet is not loaded, as in Triton
        raise ProtocolError(str(error), status=404) from None


def _tensor_metadata(spec: Tensor) -> dict[str, Any]:
    return {"name": spec.name, "datatype": NUMPY_TO_DATATYPE[spec.dtype], "shape": spec.shape}


async def server_metadata(_call: Call) -> Response:
    return JSONResponse({"name": SERVER_NAME, "version": PROTOCOL_VERSION, "extensions": EXTENSIONS})


async def server_live(_call: Call) -> Response:
    return JSONResponse({"live": True})


async def server_ready(_call: Call) -> Response:
    ready = current_registry().ready
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


async def model_metadata(call: Call) -> Response:
    model = _model(call)
    return JSONResponse({
        "name": model.name,
        "versions": list(current_registry().versions.get(model.name, {})),
        "platform": "onnxruntime_onnx",
        "inputs": [_tensor_metadata(spec) for spec in model.input_spec()],
        "outputs": [_tensor_metadata(spec) for spec in model.card.graphs["model"].outputs],
        "parameters": {"device": current_registry().settings.device, "providers": _providers(model),
                       "sha256": model.card.sha256},
    })


async def model_ready(call: Call) -> Response:
    model = _model(call)
    return JSONResponse({"name": model.name, "ready": True})  # _model refuses one that is not loaded


def _reason(error: Exception) -> str:
    """ONNX Runtime's words, also where the generation worker ran the graph: BentoML hands its
    refusal over as the JSON text of ``{"error": ...}``."""
    text = str(error)
    try:
        return str(json.loads(text)["error"])
    except (ValueError, TypeError, KeyError):
        return text


def _providers(model: LoadedModel) -> list[str]:
    """The providers the model runs on: its session's, or for a model another worker runs (the
    generative ones), the ones the settings give every session (a session that cannot have them
    fails to load)."""
    if "model" in model.sessions:
        return model.sessions["model"].get_providers()
    return [provider if isinstance(provider, str) else provider[0]
            for provider in providers_for(current_registry().settings)]


class BinarySection:
    """The binary tensor data extension: the bytes after the JSON header, taken by the inputs that
    declare ``parameters.binary_data_size``, in the order they appear."""

    def __init__(self, data: memoryview = memoryview(b"")) -> None:
        self.data, self.offset = data, 0

    def take(self, name: str, size: int) -> memoryview:
        if size > len(self.data) - self.offset:
            raise ProtocolError(f"input '{name}': binary_data_size {size} runs past the binary data sent "
                                f"({len(self.data) - self.offset} bytes left)")
        self.offset += size
        return self.data[self.offset - size:self.offset]

    def check_consumed(self) -> None:
        if self.offset != len(self.data):
            raise ProtocolError(f"{len(self.data) - self.offset} bytes of binary data belong to no input")


def _parse_input(entry: Any, spec: Tensor, limits: Settings = Settings(),
                 binary: BinarySection | None = None) -> np.ndarray:
    """One request tensor (JSON ``data`` or binary) -> a NumPy array of the graph's dtype and shape."""
    name = spec.name
    parameters = entry.get("parameters", {}) if isinstance(entry, dict) else {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"input '{name}': parameters must be an object")
    binary_size = parameters.get("binary_data_size")
    needed = {"name", "shape", "datatype"} | ({"data"} if binary_size is None else set())
    if not isinstance(entry, dict) or not needed <= entry.keys():
        raise ProtocolError(f"input '{name}' needs name, shape, datatype and data (or binary_data_size)")
    shape, datatype = entry["shape"], entry["datatype"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                               for d in shape):
        raise ProtocolError(f"input '{name}': shape must be a list of non-negative integers, got {shape!r}")
    _check_size(name, shape, limits)
    expected = NUMPY_TO_DATATYPE[spec.dtype]
    if datatype != expected:
        raise ProtocolError(f"input '{name}': datatype {datatype!r} does not match the model's {expected}")
    if len(shape) != len(spec.shape) or any(want not in (-1, got) for want, got in zip(spec.shape, shape)):
        raise ProtocolError(f"input '{name}': shape {shape} does not match the model's {spec.shape} "
                            "(-1: any size)")
    target = DATATYPES[datatype]
    if binary_size is None:
        flat = _json_values(name, entry["data"], target, datatype)
    else:
        flat = _binary_values(name, binary_size, shape, target, binary or BinarySection())
    if flat.size != math.prod(shape):
        raise ProtocolError(f"input '{name}': {flat.size} values do not fill shape {shape}")
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        raise ProtocolError(f"input '{name}': data must be finite")
    return flat.reshape(shape)


def _json_values(name: str, data: Any, target: np.dtype, datatype: str) -> np.ndarray:
    try:
        raw = np.asarray(data)
    except ValueError:
        raise ProtocolError(f"input '{name}': data is ragged; send a flat list or equal-length nested lists") from None
    if raw.size and raw.dtype.kind not in ACCEPTED_KINDS[target.kind]:
        raise ProtocolError(f"input '{name}': data holds {raw.dtype.kind!r}-kind values, not {datatype}")
    if raw.size and target.kind in "iu" and (raw.min() < np.iinfo(target).min or raw.max() > np.iinfo(target).max):
        raise ProtocolError(f"input '{name}': values outside the {datatype} range")
    return raw.astype(target).ravel()


def _binary_values(name: str, size: Any, shape: list[int], target: np.dtype, binary: BinarySection) -> np.ndarray:
    """Little-endian values, as Triton's clients send them (``set_data_from_numpy(binary_data=True)``)."""
    expected = math.prod(shape) * target.itemsize
    if not isinstance(size, int) or isinstance(size, bool) or size != expected:
        raise ProtocolError(f"input '{name}': binary_data_size must be {expected} bytes for shape {shape}, "
                            f"got {size!r}")
    return np.frombuffer(binary.take(name, size), dtype=target.newbyteorder("<")).astype(target)


def _check_size(name: str, shape: list[int], limits: Settings) -> None:
    """Refuse a tensor over the configured rows or values before any memory is spent on it: one
    12 MB request of 8,000 digits took a worker from 209 MB to 2 GB, for good."""
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


def _split(raw: bytes, header_length: str | None) -> tuple[bytes, BinarySection]:
    """The JSON header and the binary section; the header's length travels in its own HTTP header."""
    if header_length is None:
        return raw, BinarySection()
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise ProtocolError(f"Inference-Header-Content-Length must be a byte count within the {len(raw)} byte "
                            f"body (binary tensor data extension), got {header_length!r}")
    return raw[:int(header_length)], BinarySection(memoryview(raw)[int(header_length):])


def _answer(header: bytes, blobs: list[bytes], extra_headers: dict[str, str]) -> Response:
    if not blobs:
        return Response(header, media_type="application/json", headers=extra_headers)
    return Response(b"".join([header, *blobs]), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header)), **extra_headers})


async def infer(call: Call) -> Response:
    header_length = call.headers.get(HEADER_LENGTH.encode())
    started = time.perf_counter()
    model = _model(call)
    answer, blobs, results = await _infer(model, call.body,
                                          None if header_length is None else header_length.decode("latin-1"))
    log = current_log()
    prediction_id = issue_for(log)
    if prediction_id is not None:
        # The protocol's place for what a server adds to an answer: clients keep it, and ignore it.
        answer["parameters"] = {"prediction_id": prediction_id}
    # pydantic-core's serialiser: a tenth of ``json.dumps``'s time on a digit's answer; a value that
    # is not finite becomes null (JSON has no NaN), where ``json.dumps(allow_nan=False)`` raised.
    header = pydantic_core.to_json(answer, inf_nan_mode="null")
    if prediction_id is None:
        return _answer(header, blobs, {})
    # An image model's input is a picture, and raw tensor bytes are no text: the log keeps their
    # digest (and themselves with ZOOSERVE_LOG_IMAGES=on).
    inputs = (log.picture_inputs(call.body) if header_length is not None or model.card.task == "image-classification"
              else call.body.decode("utf-8", "replace"))
    endpoint = f"{VERSIONED if 'version' in call.params else MODEL}/infer"
    log.record_row(prediction_id, REQUEST_ID.get(), endpoint, model.name,
                   model.card.version, time.perf_counter() - started, inputs, header.decode(),
                   _predicted(model, results))
    return _answer(header, blobs, {PREDICTION_ID: prediction_id})


def _predicted(model: LoadedModel, results: list[np.ndarray]) -> list[Any] | None:
    """What feedback on a /v2 answer is scored against, as for the model's REST answers: a
    classifier's label per row (the widest score), a regressor's values; None otherwise."""
    card = model.card
    if card.task == "tabular-regression":
        return results[0].ravel().tolist()
    if card.task == "image-classification" and card.labels:
        scores = next((value for value in results if value.ndim == 2 and value.shape[1] == len(card.labels)), None)
        return None if scores is None else [card.labels[i] for i in scores.argmax(axis=1)]
    return None


async def _infer(model: LoadedModel, raw: bytes, header_length: str | None
                 ) -> tuple[dict[str, Any], list[bytes], list[np.ndarray]]:
    """The answer (without its binary parts), the binary parts, and the graph's outputs."""
    header, binary = _split(raw, header_length)
    try:
        # pydantic-core's parser: 26 us for a digit's 784 values where ``json.loads`` took 223 us.
        body = pydantic_core.from_json(header)
    except (ValueError, RecursionError):
        raise ProtocolError("request body is not valid JSON (or is nested too deeply)") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ProtocolError("request needs a non-empty 'inputs' list")
    if not isinstance(body.get("parameters", {}), dict):
        raise ProtocolError("'parameters' must be an object")
    if body.get("id") is not None and not isinstance(body["id"], str):
        raise ProtocolError("'id' must be a string")
    specs = {spec.name: spec for spec in model.input_spec()}
    names = _names(body["inputs"], "inputs")
    if len(set(names)) != len(names) or set(names) != set(specs):
        raise ProtocolError(f"inputs must be exactly {sorted(specs)}, got {names}")
    limits = current_registry().settings
    feeds = {entry["name"]: _parse_input(entry, specs[entry["name"]], limits, binary) for entry in body["inputs"]}
    binary.check_consumed()
    output_specs = model.card.graphs["model"].outputs
    requested = body.get("outputs")
    requested = [] if requested is None else requested
    wanted = _names(requested, "outputs")
    available = [spec.name for spec in output_specs]
    if any(name not in available for name in wanted):
        raise ProtocolError(f"outputs must be among {available}, got {wanted}")
    try:
        if not model.sessions:  # a generative model: the generation worker alone holds its sessions
            results = await bentoml.get_current_service().call_generators(
                "infer", model=model.name, feeds=feeds, version=model.card.version)
        elif sum(feed.size for feed in feeds.values()) <= INLINE_VALUES:
            results = model.run(feeds)
        else:
            # Shielded: a deadline's 504 does not return the thread's limiter token while it still runs.
            results = await asyncio.shield(asyncio.ensure_future(anyio.to_thread.run_sync(model.run, feeds)))
    except Unavailable:  # the generation worker is restarting: a 503 to retry
        raise
    except Exception as error:  # ONNX Runtime rejects what the metadata allowed (e.g. an empty batch)
        raise ProtocolError(f"inference failed: {_reason(error)}") from None
    as_binary = {entry["name"]: (entry.get("parameters") or {}).get("binary_data") for entry in requested}
    default_binary = bool(body.get("parameters", {}).get("binary_data_output", False))
    outputs, blobs = [], []
    for name, value in zip(available, results):
        if wanted and name not in wanted:
            continue
        output = {"name": name, "datatype": DTYPE_TO_DATATYPE[value.dtype], "shape": list(value.shape)}
        if as_binary.get(name, default_binary):
            blobs.append(value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes())
            output["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            output["data"] = value.ravel().tolist()
        outputs.append(output)
    answer = {"model_name": model.name, "model_version": model.card.version, "outputs": outputs}
    if "id" in body:
        answer["id"] = body["id"]
    return answer, blobs, results


TAG = "open inference protocol"
MODEL, VERSIONED = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
HEALTH = {"key": False, "admission": None}
OCTETS = "application/octet-stream"
INFER_EXAMPLE = {"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
                             "data": list(schemas.EXAMPLE_HOUSE.model_dump().values())}]}
ROUTES = [
    # Inference first: nearly all the traffic, and the first template the gateway tries.
    *(Route(f"{prefix}/infer", "POST", infer, "handler", tag=TAG, summary=(
        "Run a model on tensors (JSON data, or raw bytes after the JSON with Inference-Header-Content-Length)"),
        forms={JSON: schemas.InferenceRequest, OCTETS: BINARY}, answers={JSON: schemas.InferenceResponse,
                                                                         OCTETS: BINARY},
        answer_note="the outputs", examples={JSON: INFER_EXAMPLE}) for prefix in (MODEL, VERSIONED)),
    Route("/v2", "GET", server_metadata, "handler", "Server metadata", TAG, answers={JSON: schemas.ServerMetadata},
          answer_note="the server"),
    Route("/v2/health/live", "GET", server_live, "handler", "Server liveness", TAG,
          answers={JSON: schemas.Liveness}, answer_note="live", **HEALTH),
    Route("/v2/health/ready", "GET", server_ready, "handler", "Server readiness", TAG,
          answers={JSON: schemas.Readiness}, answer_note="ready", **HEALTH),
    *(Route(prefix, "GET", model_metadata, "handler", "A model's inputs and outputs", TAG,
            answers={JSON: schemas.ModelMetadata}, answer_note="the model") for prefix in (MODEL, VERSIONED)),
    *(Route(f"{prefix}/ready", "GET", model_ready, "handler", "A model's readiness", TAG,
            answers={JSON: schemas.ModelReadiness}, answer_note="the model's readiness")
      for prefix in (MODEL, VERSIONED)),
]
