"""The demo page at ``/`` (static HTML, CSS and plain JavaScript), ``GET /models``, the loaded
models with their versions and test metrics, which the page lists, ``GET /models/{name}/card``,
each one's whole model card, and the OpenAPI document
(``/docs.json``, written by ``openapi``) with its Swagger UI page (``/docs``)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import _bentoml_impl.server
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from serving.errors import ServiceError, error_response
from serving.protocol.gateway import Call
from serving.protocol.oip import current_registry
from serving.inference.postprocess import headline_numbers
from serving import schemas
from serving.protocol.openapi import document
from serving.protocol.routing import JSON, Route, RouteTable
from serving.repository.registry import ModelTraining

PAGE = Path(__file__).with_name("page")
# The labs' plots as committed for the docs (``make labs`` writes new ones to reports/): the page's
# Course panel shows them, and the Bento packs them at the same place relative to ``serving``.
LABS = Path(__file__).resolve().parents[2] / "docs" / "labs"
# BentoML's own Swagger UI page, served at /docs over ZooServe's document (/docs.json); its files
# are served from where BentoML ships them (``serving.routes``).
OPENAPI_PAGE = Path(_bentoml_impl.server.__file__).with_name("main-openapi.html")


async def index(_call: Call) -> FileResponse:
    return FileResponse(PAGE / "index.html")


async def openapi_page(_call: Call) -> FileResponse:
    return FileResponse(OPENAPI_PAGE)


@lru_cache(maxsize=1)
def _document(routes: RouteTable, _generation: int) -> bytes:
    """Built once per set of loaded models: the cards and settings it reads change only when a model
    is added (a first run), which ``generation`` counts."""
    registry = current_registry()
    return json.dumps(document(routes, registry, registry.settings)).encode()


async def openapi_document(call: Call) -> Response:
    """The document of the routes of the table that routed this request."""
    return Response(_document(call.routes, current_registry().generation), media_type="application/json")


async def models(_call: Call) -> JSONResponse:
    """The loaded models (the version requests naming none get, and every version loaded), then, in a
    first run, those still training with their progress."""
    registry = current_registry()
    served = registry.served  # one state: a swap in another thread does not split it
    return JSONResponse([{**model.summary, "state": "loaded", "versions": list(served.versions.get(model.name, {})),
                          "pinned": registry.pins.get(model.name), "task": model.card.task,
                          "profile": model.card.profile,
                          "metrics": headline_numbers(model.card.metrics),
                          **({"graph": model.graph_choice} if model.card.variants else {}),
                          **({"labels": model.card.labels} if model.card.labels is not None else {})}
                         for model in served.models.values()]
                        + [coming.as_json() for coming in registry.pending().values()])


@lru_cache(maxsize=1)
def _cards(_generation: int) -> dict[str, bytes]:
    """Every served card as JSON, built once per set of loaded models (a house card is about 40 kB)."""
    return {name: json.dumps(model.card.model_dump(mode="json", exclude_unset=True)).encode()
            for name, model in current_registry().models.items()}


async def model_card(call: Call) -> Response:
    """The whole card a model is served with: metrics, calibrations, its model card's prose and its
    training footprint (``training/model_cards.py``)."""
    name = call.params["name"]
    registry = current_registry()
    cards = _cards(registry.generation)
    card = cards.get(name)
    coming = registry.pending().get(name) if card is None else None  # the plan is read once
    if coming is not None:
        return error_response(ModelTraining(coming.message()))
    if card is None:
        return error_response(ServiceError(f"no model {name!r} on this server (loaded: {sorted(cards)})",
                                           status=404, field="name", kind="not_found"))
    return Response(card, media_type="application/json")


PAGE_ROUTE = {"key": False, "admission": None, "documented": False}  # the page holds no data; it asks for the key
ROUTES = [
    Route("/", "GET", index, "handler", "The demo page", "page", **PAGE_ROUTE),
    Route("/static/{file}", "GET", StaticFiles(directory=PAGE), "asgi", "The demo page's files", "page",
          **PAGE_ROUTE),
    Route("/labs/{file}", "GET", StaticFiles(directory=LABS, check_dir=False), "asgi", "The course labs' plots",
          "page", **PAGE_ROUTE),
    Route("/docs", "GET", openapi_page, "handler", "This document, as a Swagger UI page", "service",
          admission=None, documented=False),
    Route("/docs.json", "GET", openapi_document, "handler", "This document (OpenAPI 3.1)", "service",
          admission=None, documented=False),
    Route("/models", "GET", models, "handler", "The served models: versions, tasks and headline test metrics",
          "service", answers={JSON: schemas.ModelListings}),
    Route("/models/{name}/card", "GET", model_card, "handler",
          "A model's whole card: metrics, calibrations, intended use, limitations, training footprint", "service",
          answers={JSON: {"type": "object", "required": ["name", "version", "metrics"]}}, answer_note="the card"),
]
