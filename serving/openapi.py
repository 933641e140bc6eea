"""The OpenAPI document served at ``/docs.json``: every route, every answer, the bounds in force.

BentoML's generated document describes each endpoint's JSON success body only: no error
answers, no PNG answers, one form per endpoint (so it offered fields the service refuses), and
nothing of ``/v2``, ``/models`` or the health routes. Clients are generated from this document,
so ZooServe writes it itself (OpenAPI 3.1, whose schemas are pydantic's JSON Schema unchanged):
the request and response models of ``schemas``, the model cards (DDIM steps, labels, the
forecast window, the served models and versions) and the settings in force (the API key, the
image limits), so a request the document allows is one the server serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import schemas
from .access import OPEN_PATHS
from .catalog import DIFFUSION_MODEL, DIGIT_MODELS, HOUSE_PRICE_MODELS, IMAGES_MODEL, PASSENGERS_MODEL
from .generation import most_steps
from .registry import Registry
from .settings import Settings

REF = "#/components/schemas/{model}"
JSON, MULTIPART, PNG, TEXT = "application/json", "multipart/form-data", "image/png", "text/plain"
# Each refusal the layers in front of every endpoint can give, with the one error body.
REFUSALS = {
    "400": "the request is malformed or a field is out of bounds; `detail` names each field",
    "401": "the API key is missing or wrong (only when the server has one: ZOOSERVE_API_KEY)",
    "408": "the request body was not received in full in time (ZOOSERVE_BODY_TIMEOUT_SECONDS)",
    "413": "the body, an upload or a tensor is over its limit",
    "415": "an upload's image format is not accepted",
    "429": "too many requests of this kind in flight; retry after `Retry-After` seconds",
    "503": "a model or worker is not available now; retry after `Retry-After` seconds",
    "504": "no answer within the server's timeout (ZOOSERVE_TIMEOUT_SECONDS)",
}
OPEN_REFUSALS = ("503",)
EXAMPLE_MODEL = HOUSE_PRICE_MODELS["gbm"]  # health and metrics: no key, no body, no queue
DOCUMENTED = (
    schemas.HousePriceRequest, schemas.HousePriceResponse, schemas.HouseExplainRequest, schemas.HouseExplainResponse,
    schemas.DigitExplanation, schemas.ForecastRequest, schemas.ForecastResponse,
    schemas.DigitPixels, schemas.DigitResponse, schemas.ImageResponse, schemas.GenerateRequest,
    schemas.DiffusionRequest, schemas.GeneratedImages, schemas.InterpolationSeeds, schemas.Error,
    schemas.ModelListing, schemas.ServerMetadata, schemas.ModelMetadata, schemas.Liveness, schemas.Readiness,
    schemas.ModelReadiness, schemas.InferenceRequest, schemas.InferenceResponse,
)
FILE = {"type": "string", "format": "binary"}
PICTURE = {**FILE, "description": "a picture: PNG, JPEG, BMP or GIF, any size, polarity or colour"}
SEED_HEADER = {"description": "the seed the images were drawn with: send it again for the same bytes",
               "schema": {"type": "integer"}}
MODEL_HEADER = {"description": "the model's name and version", "schema": {"type": "string"}}


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def components() -> dict[str, Any]:
    """Every documented model's JSON Schema, each nested model once under its own name."""
    _, definitions = models_json_schema([(model, "validation") for model in DOCUMENTED], ref_template=REF)
    return definitions["$defs"]


def answer(description: str, content: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {kind: {"schema": schema} for kind, schema in content.items()},
            **({"headers": headers} if headers else {})}


def operation(summary: str, tag: str, success: dict[str, Any], body: dict[str, Any] | None = None,
              examples: dict[str, Any] | None = None, refusals: Iterable[str] = REFUSALS,
              parameters: list[dict[str, Any]] | None = None, body_required: bool = True) -> dict[str, Any]:
    """One operation: its request forms (content type -> schema), its 200 and each refusal."""
    refused = {status: answer(REFUSALS[status], {JSON: ref(schemas.Error)}) for status in refusals}
    spec: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {"200": success, **refused}}
    if parameters:
        spec["parameters"] = parameters
    if body is not None:
        spec["requestBody"] = {"required": body_required, "content": {
            kind: {"schema": schema, **({"example": examples[kind]} if examples and kind in examples else {})}
            for kind, schema in body.items()}}
    return spec


def form(model: type[BaseModel], required: list[str], leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """A multipart form: the request model's JSON Schema, its file fields as binary parts, without
    the fields that belong to the endpoint's JSON form."""
    schema = model.model_json_schema(ref_template=REF)
    properties = {name: PICTURE if model.model_fields[name].annotation is Path else spec
                  for name, spec in schema["properties"].items() if name not in leave_out}
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _first(spec: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema."""
    return spec["anyOf"][0] if "anyOf" in spec else spec


def path_parameter(name: str, values: list[str], description: str, example: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "enum": sorted(values)}, "example": example}


def _apply_bounds(definitions: dict[str, Any], registry: Registry, settings: Settings) -> None:
    """The limits that come from the cards and the settings, not from the schemas' constants."""
    for model in ("GenerateRequest", "DiffusionRequest"):
        definitions[model]["properties"]["n"]["maximum"] = settings.max_images
    _first(definitions["InterpolationSeeds"]["properties"]["frames"])["maximum"] = settings.max_images
    if DIFFUSION_MODEL in registry.models:
        sampling = registry.get(DIFFUSION_MODEL).card.sampling
        _first(definitions["DiffusionRequest"]["properties"]["steps"])["maximum"] = most_steps(sampling, settings)
    _served_digit_models(definitions["DigitPixels"], registry)
    if PASSENGERS_MODEL in registry.models:
        window = registry.get(PASSENGERS_MODEL).card.preprocessing["window"]
        _first(definitions["ForecastRequest"]["properties"]["history"])["minItems"] = window


def _served_digit_models(schema: dict[str, Any], registry: Registry) -> None:
    """``model`` of a digit request names only the classifiers this server loaded."""
    schema["properties"]["model"]["enum"] = [name for name in DIGIT_MODELS if name in registry.models]


def _rest(registry: Registry, settings: Settings) -> dict[str, Any]:
    ok = "the answer"
    generated = answer("a PNG grid of the digits (format png, the default), or one base64 PNG each (format json)",
                       {PNG: FILE, JSON: ref(schemas.GeneratedImages)},
                       {"X-Seed": SEED_HEADER, "X-Model": MODEL_HEADER})
    digit_form = form(schemas.DigitRequest, ["image"], leave_out=("pixels",))
    _served_digit_models(digit_form, registry)
    photo_form = form(schemas.ImageRequest, ["image"])
    if IMAGES_MODEL in registry.models:
        _first(photo_form["properties"]["top_k"])["maximum"] = len(registry.get(IMAGES_MODEL).card.labels)
    strip_form = form(schemas.InterpolateRequest, ["start", "end"], leave_out=("seeds",))
    _first(strip_form["properties"]["frames"])["maximum"] = settings.max_images
    house = schemas.EXAMPLE_HOUSE.model_dump()
    shown = min(16, settings.max_images)  # the generators' examples ask for what the server allows
    return {
        "/house-price/predict": {"post": operation(
            "Median house values of California block groups", "models",
            answer(ok, {JSON: ref(schemas.HousePriceResponse)}),
            {JSON: ref(schemas.HousePriceRequest)}, {JSON: {"houses": [house], "model": "gbm"}})},
        "/house-price/explain": {"post": operation(
            "Why each house got its price: exact Shapley values of its features (up to 8 houses)", "models",
            answer(ok, {JSON: ref(schemas.HouseExplainResponse)}),
            {JSON: ref(schemas.HouseExplainRequest)}, {JSON: {"houses": [house], "model": "gbm"}})},
        "/passengers/forecast": {"post": operation(
            "Monthly airline passengers for the next months", "models",
            answer(ok, {JSON: ref(schemas.ForecastResponse)}),
            {JSON: ref(schemas.ForecastRequest)}, {JSON: {"history": schemas.EXAMPLE_HISTORY, "horizon": 12}},
            body_required=False)},  # every field has a default
        "/digits/classify": {"post": operation(
            "The digit in a picture (multipart `image`) or in 28x28 gray values (JSON `pixels`)", "models",
            answer(ok, {JSON: ref(schemas.DigitResponse)}),
            {MULTIPART: digit_form, JSON: ref(schemas.DigitPixels)},
            {JSON: {"pixels": schemas.EXAMPLE_PIXELS}})},
        "/digits/explain": {"post": operation(
            "Which strokes made the digit: an occlusion map (28x28 numbers and a PNG heat map)", "models",
            answer(ok, {JSON: ref(schemas.DigitExplanation)}),
            {MULTIPART: digit_form, JSON: ref(schemas.DigitPixels)},
            {JSON: {"pixels": schemas.EXAMPLE_PIXELS}})},
        "/images/classify": {"post": operation(
            "The most probable labels of a photo", "models", answer(ok, {JSON: ref(schemas.ImageResponse)}),
            {MULTIPART: photo_form})},
        "/generate/vae": {"post": operation(
            "Digits decoded from random points of the VAE's latent space (a digit: by the conditional VAE)",
            "generators", generated,
            {JSON: ref(schemas.GenerateRequest)}, {JSON: {"n": shown, "seed": 1, "format": "png"}})},
        "/generate/gan": {"post": operation(
            "Digits from the GAN's generator (a digit: by the conditional GAN)", "generators", generated,
            {JSON: ref(schemas.GenerateRequest)}, {JSON: {"n": shown, "seed": 1, "digit": 3, "format": "png"}})},
        "/generate/diffusion": {"post": operation(
            "Digits denoised by DDIM, optionally all of one digit", "generators", generated,
            {JSON: ref(schemas.DiffusionRequest)}, {JSON: {"n": shown, "seed": 1, "digit": 7, "format": "png"}})},
        "/generate/vae/interpolate": {"post": operation(
            "A strip of the VAE's decodings between two seeds (JSON) or two uploaded digits (multipart)",
            "generators", answer("the strip as one PNG", {PNG: FILE}, {"X-Model": MODEL_HEADER}),
            {JSON: ref(schemas.InterpolationSeeds), MULTIPART: strip_form}, {JSON: {"seeds": [1, 2]}})},
        "/noop": {"post": operation(
            "Does nothing: the cost of a request through the service, which `make bench` compares with",
            "service", answer(ok, {JSON: {"type": "object", "maxProperties": 0}}),
            {JSON: {"type": "object"}}, {JSON: {}}, body_required=False)},
        "/models": {"get": operation(
            "The served models: versions, tasks and headline test metrics", "service",
            answer(ok, {JSON: {"type": "array", "items": ref(schemas.ModelListing)}}))},
        "/models/{name}/card": {"get": _card_operation(registry)},
    }


def _card_operation(registry: Registry) -> dict[str, Any]:
    example = EXAMPLE_MODEL if EXAMPLE_MODEL in registry.models else next(iter(registry.models), "")
    spec = operation("A model's whole card: metrics, calibrations, intended use, limitations, training footprint",
                     "service",
                     answer("the card", {JSON: {"type": "object", "required": ["name", "version", "metrics"]}}),
                     parameters=[path_parameter("name", list(registry.models), "a served model", example)])
    spec["responses"]["404"] = answer("no such model on this server", {JSON: ref(schemas.Error)})
    return spec


def _health() -> dict[str, Any]:
    plain = answer("up", {TEXT: {"type": "string"}})
    return {
        "/livez": {"get": operation("Liveness: the server process answers", "health", plain, refusals=OPEN_REFUSALS)},
        "/healthz": {"get": operation("Liveness (the name Kubernetes examples use)", "health", plain,
                                      refusals=OPEN_REFUSALS)},
        "/readyz": {"get": operation("Readiness: every model loaded and warmed up", "health", plain,
                                     refusals=OPEN_REFUSALS)},
        "/metrics": {"get": operation("Prometheus metrics (text exposition format)", "health",
                                      answer("the metrics", {TEXT: {"type": "string"}}), refusals=OPEN_REFUSALS)},
    }


def _open_inference(registry: Registry) -> dict[str, Any]:
    """The Open Inference Protocol's REST routes over every served model."""
    names = list(registry.models)
    if not names:  # a first run's first seconds: no model's routes to describe yet
        return {}
    # The examples' model: its input is the one in the infer example below.
    example = EXAMPLE_MODEL if EXAMPLE_MODEL in registry.models else names[0]
    model = path_parameter("name", names, "a served model", example)
    version = path_parameter("version", [m.card.version for m in registry.models.values()],
                             "the model's version (its card's; another model's version is a 404)",
                             registry.get(example).card.version)
    wrong_model = {"404": answer("no such model or version here", {JSON: ref(schemas.Error)})}
    refusals = [status for status in REFUSALS if status != "415"]
    paths: dict[str, Any] = {
        "/v2": {"get": operation("Server metadata", "open inference protocol",
                                 answer("the server", {JSON: ref(schemas.ServerMetadata)}))},
        "/v2/health/live": {"get": operation("Server liveness", "open inference protocol",
                                             answer("live", {JSON: ref(schemas.Liveness)}), refusals=OPEN_REFUSALS)},
        "/v2/health/ready": {"get": operation("Server readiness", "open inference protocol",
                                              answer("ready", {JSON: ref(schemas.Readiness)}),
                                              refusals=OPEN_REFUSALS)},
    }
    for prefix, parameters in (("/v2/models/{name}", [model]), ("/v2/models/{name}/versions/{version}",
                                                                 [model, version])):
        metadata = operation("A model's inputs and outputs", "open inference protocol",
                             answer("the model", {JSON: ref(schemas.ModelMetadata)}), parameters=parameters)
        ready = operation("A model's readiness", "open inference protocol",
                          answer("the model's readiness", {JSON: ref(schemas.ModelReadiness)}), parameters=parameters)
        infer = operation(
            "Run a model on tensors (JSON data, or raw bytes after the JSON with Inference-Header-Content-Length)",
            "open inference protocol",
            answer("the outputs", {JSON: ref(schemas.InferenceResponse), "application/octet-stream": FILE}),
            {JSON: ref(schemas.InferenceRequest), "application/octet-stream": FILE},
            {JSON: {"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
                                "data": list(schemas.EXAMPLE_HOUSE.model_dump().values())}]}},
            refusals=refusals, parameters=parameters)
        for spec in (metadata, ready, infer):
            spec["responses"].update(wrong_model)
        paths[prefix] = {"get": metadata}
        paths[f"{prefix}/ready"] = {"get": ready}
        paths[f"{prefix}/infer"] = {"post": infer}
    return paths


def document(registry: Registry, settings: Settings) -> dict[str, Any]:
    definitions = components()
    _apply_bounds(definitions, registry, settings)
    paths = {**_rest(registry, settings), **_health(), **_open_inference(registry)}
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "ZooServe", "version": "1",
                 "description": "Classical and deep models, exported to ONNX, served over HTTP. Every refusal "
                                "answers with the `Error` shape."},
        "paths": paths,
        "components": {"schemas": definitions},
    }
    if settings.api_key:
        spec["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
    for path, operations in paths.items():
        for method, op in operations.items():
            # Generated clients name their functions after these: post_house_price_predict, ...
            op["operationId"] = f"{method}_{path.strip('/').replace('{', '').replace('}', '')}".replace(
                "/", "_").replace("-", "_")
            if not settings.api_key:
                op["responses"].pop("401", None)
            elif path not in OPEN_PATHS:
                op["security"] = [{"apiKey": []}]
    return spec
