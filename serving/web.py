"""The demo page at ``/`` (static HTML, CSS and plain JavaScript) and ``GET /models``, the
loaded models with their versions and test metrics, which the page lists."""

from __future__ import annotations

from pathlib import Path

import _bentoml_impl.server
import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .postprocess import headline_numbers

PAGE = Path(__file__).with_name("web")
# BentoML serves its OpenAPI (Swagger UI) page at "/", which the demo page now takes; the same
# file is served at /docs instead (its assets and /docs.json stay where BentoML put them).
OPENAPI_PAGE = Path(_bentoml_impl.server.__file__).with_name("main-openapi.html")


async def index(_request: Request) -> FileResponse:
    return FileResponse(PAGE / "index.html")


async def openapi_page(_request: Request) -> FileResponse:
    return FileResponse(OPENAPI_PAGE)


async def models(_request: Request) -> JSONResponse:
    registry = bentoml.get_current_service().registry
    return JSONResponse([{**model.summary, "task": model.card.task, "profile": model.card.profile,
                          "metrics": headline_numbers(model.card.metrics),
                          **({"labels": model.card.labels} if model.card.labels is not None else {})}
                         for model in registry.models.values()])


web_app = Starlette(routes=[Route("/", index), Route("/docs", openapi_page), Route("/models", models),
                            Mount("/static", StaticFiles(directory=PAGE), name="static")])
