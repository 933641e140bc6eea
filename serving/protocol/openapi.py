"""The OpenAPI document served at ``/docs.json``: every route, every answer, the bounds in force.

BentoML's generated document describes each endpoint's JSON success body only: no error
answers, no PNG answers, one form per endpoint (so it offered fields the service refuses), and
nothing of ``/v2``, ``/models`` or the health routes. Clients are generated from this document,
so ZooServe writes it itself (OpenAPI 3.1, whose schemas are pydantic's JSON Schema unchanged)
from the route table (each route's forms, answers and the refusals its guards can give), the
model cards (DDIM steps, labels, the forecast window, the served models and versions) and the
settings in force (the API key, the image limits), so a request the document allows is one the
server serves.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving import schemas
from serving.inference.generation import most_steps
from serving.protocol.routing import JSON, Route
from serving.repository.catalog import (DIFFUSION_MODEL, DIGIT_MODELS, GENERATOR_FAMILIES, HOUSE_PRICE_MODELS,
                                        IMAGES_MODEL, PASSENGERS_MODEL)
from serving.repository.registry import Registry
from serving.settings import Settings

REF = "#/components/schemas/{model}"
# Each refusal the layers in front of every endpoint can give, with the one error body.
REFUSALS = {
    "400": "the request is malformed or a field is out of bounds; `detail` names each field",
    "401": "the API key is missing or wrong (only when the server has one: ZOOSERVE_API_KEY)",
    "404": "no such model or version on this server (feedback: no logged answer with that prediction_id, or no log)",
    "408": "the request body was not received in full in time (ZOOSERVE_BODY_TIMEOUT_SECONDS)",
    "409": "the job is not done (queued, running, failed or cancelled): its state says which",
    "410": "the job finished more than ZOOSERVE_JOB_TTL_SECONDS ago, or its result was discarded",
    "413": "the body, an upload or a tensor is over its limit",
    "415": "an upload's image format is not accepted",
    "429": "too many requests of this kind in flight (or jobs queued: ZOOSERVE_MAX_JOBS); retry after "
           "`Retry-After` seconds",
    "503": "a model or worker is not available now; retry after `Retry-After` seconds",
    "504": "no answer within the server's timeout (ZOOSERVE_TIMEOUT_SECONDS)",
}
EXAMPLE_MODEL = HOUSE_PRICE_MODELS["gbm"]
HEADERS = {
    "X-Seed": {"description": "the seed the images were drawn with: send it again for the same bytes",
               "schema": {"type": "integer"}},
    "X-Model": {"description": "the model's name and version", "schema": {"type": "string"}},
}


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _schema(value: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    return ref(value) if isinstance(value, type) else value


def _models(routes: Iterable[Route]) -> list[type[BaseModel]]:
    """Every model a route's forms or answers name, and the error shape, each once."""
    found = [schemas.Error]
    for route in routes:
        for value in [*route.forms.values(), *route.answers.values()]:
            if isinstance(value, type) and value not in found:
                found.append(value)
    return found


def components(routes: Iterable[Route]) -> dict[str, Any]:
    """Every documented model's JSON Schema, each nested model once under its own name."""
    _, definitions = models_json_schema([(model, "validation") for model in _models(routes)], ref_template=REF)
    return definitions["$defs"]


def refusals(route: Route) -> list[str]:
    """The refusals the gateway can give on this route, from what the route declares."""
    statuses = ["503"]
    if route.method == "POST":
        statuses += ["400", "408", "413"]
    if route.query:
        statuses.append("400")
    if route.key:
        statuses.append("401")
    # A path naming a model, or a form naming a version: the model or version may not be loaded.
    if route.parameters or any("version" in getattr(form, "model_fields", {}) for form in route.forms.values()):
        statuses.append("404")
    if route.via == "endpoint":  # a content type the route takes no form for; an image format it cannot read
        statuses.append("415")
    if route.admission is not None:
        statuses.append("429")
    if route.timed and route.via != "bentoml":
        statuses.append("504")
    return sorted({*statuses, *route.extra_refusals})


def operation(route: Route, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """One operation: its request forms (content type -> schema), its 200 and each refusal."""
    success = {"description": route.answer_note,
               "content": {kind: {"schema": _schema(value)} for kind, value in route.answers.items()}}
    if route.answer_headers:
        success["headers"] = {name: HEADERS[name] for name in route.answer_headers}
    refused = {status: {"description": REFUSALS[status], "content": {JSON: {"schema": ref(schemas.Error)}}}
               for status in refusals(route)}
    spec: dict[str, Any] = {"summary": route.summary, "tags": [route.tag],
                            "responses": {str(route.answer_status): success, **refused}}
    if parameters or route.query:
        spec["parameters"] = [*parameters, *route.query]
    if route.forms:
        spec["requestBody"] = {"required": route.body_required, "content": {
            kind: {"schema": _schema(value),
                   **({"example": copy.deepcopy(route.examples[kind])} if kind in route.examples else {})}
            for kind, value in route.forms.items()}}
    return spec


def _first(spec: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema."""
    return spec["anyOf"][0] if "anyOf" in spec else spec


def _apply_bounds(definitions: dict[str, Any], registry: Registry, settings: Settings) -> None:
    """The limits that come from the cards and the settings, not from the schemas' constants."""
    for model in ("UnconditionalRequest", "GenerateRequest", "DiffusionRequest"):
        definitions[model]["properties"]["n"]["maximum"] = settings.max_images
    for model in ("InterpolationSeeds", "InterpolationUploads"):
        _first(definitions[model]["properties"]["frames"])["maximum"] = settings.max_images
    if DIFFUSION_MODEL in registry.models:
        sampling = registry.get(DIFFUSION_MODEL).card.sampling
        _first(definitions["DiffusionRequest"]["properties"]["steps"])["maximum"] = most_steps(sampling, settings)
    for model in ("DigitPixels", "DigitUpload"):  # only the classifiers this server loaded
        definitions[model]["properties"]["model"]["enum"] = [name for name in DIGIT_MODELS if name in registry.models]
    if IMAGES_MODEL in registry.models:
        _first(definitions["ImageUpload"]["properties"]["top_k"])["maximum"] = len(
            registry.get(IMAGES_MODEL).card.labels)
    if PASSENGERS_MODEL in registry.models:
        window = registry.get(PASSENGERS_MODEL).card.preprocessing["window"]
        _first(definitions["ForecastRequest"]["properties"]["history"])["minItems"] = window


def _parameters(route: Route, registry: Registry) -> list[dict[str, Any]] | None:
    """The route's path parameters, each with the values this server serves (None: a route to
    leave out while no model is loaded, the first seconds of a first run)."""
    if not route.parameters:
        return []
    if not registry.models:
        return None
    example = EXAMPLE_MODEL if EXAMPLE_MODEL in registry.models else next(iter(registry.models))
    values = {
        "name": (list(registry.models), "a served model", example),
        "version": ([m.card.version for m in registry.models.values()],
                    "the model's version (its card's; another model's version is a 404)",
                    registry.get(example).card.version),
        "family": (list(GENERATOR_FAMILIES), "the generator family the job was submitted to", DIFFUSION_MODEL),
        "job": (None, "the job's id, as its submission answered", "4mC1Dq0nZ8n2rX1c7YkJbA"),
    }
    return [{"name": name, "in": "path", "required": True, "description": values[name][1],
             "schema": {"type": "string", **({"enum": sorted(values[name][0])} if values[name][0] else {})},
             "example": values[name][2]}
            for name in route.parameters]


def _example_within_limits(operation_spec: dict[str, Any], settings: Settings) -> None:
    """The generators' examples ask for no more images than the server allows."""
    example = operation_spec.get("requestBody", {}).get("content", {}).get(JSON, {}).get("example")
    if isinstance(example, dict) and "n" in example:
        example["n"] = min(example["n"], settings.max_images)


def document(routes: Iterable[Route], registry: Registry, settings: Settings) -> dict[str, Any]:
    routes = [route for route in routes if route.documented]
    definitions = components(routes)
    _apply_bounds(definitions, registry, settings)
    paths: dict[str, Any] = {}
    for route in routes:
        parameters = _parameters(route, registry)
        if parameters is None:
            continue
        spec = operation(route, parameters)
        _example_within_limits(spec, settings)
        # Generated clients name their functions after these: post_house_price_predict, ...
        spec["operationId"] = f"{route.method.lower()}_{route.path.strip('/')}".replace("{", "").replace(
            "}", "").replace("/", "_").replace("-", "_").replace(".", "_")
        if route.key and settings.api_key:
            spec["security"] = [{"apiKey": []}]
        elif not settings.api_key:
            spec["responses"].pop("401", None)
        paths.setdefault(route.path, {})[route.method.lower()] = spec
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
    return spec
