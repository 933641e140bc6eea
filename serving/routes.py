"""The route table: every route the API worker answers, and the path each request takes.

Each route is declared once, next to its handler: the service's endpoints (``serving.service``,
``@endpoint``), the Open Inference Protocol (``serving.protocol.oip``), the page and the
document (``serving.protocol.web``), and here, BentoML's own health and metrics routes. The
gateway, the OpenAPI document and this listing all read the same table.

``python -m serving.routes`` prints it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from starlette.staticfiles import StaticFiles

from serving.protocol import jobs, management, monitoring, oip, web
from serving.protocol.routing import TEXT, Route, declared
from serving.repository.catalog import GENERATOR_FAMILIES
from serving.service import ZooServe

HEALTH = {"tag": "health", "key": False, "admission": None}
BENTOML_ROUTES = [
    Route("/livez", "GET", None, "bentoml", "Liveness: the server process answers", answers={TEXT: {"type": "string"}},
          answer_note="up", **HEALTH),
    Route("/healthz", "GET", None, "bentoml", "Liveness (the name Kubernetes examples use)",
          answers={TEXT: {"type": "string"}}, answer_note="up", **HEALTH),
    Route("/readyz", "GET", None, "bentoml", "Readiness: every model loaded and warmed up",
          answers={TEXT: {"type": "string"}}, answer_note="ready", **HEALTH),
    Route("/metrics", "GET", None, "bentoml", "Prometheus metrics (text exposition format)",
          answers={TEXT: {"type": "string"}}, answer_note="the metrics", timed=False, **HEALTH),
    Route("/schema.json", "GET", None, "bentoml", "BentoML's description of the service (names, no data)", "service",
          key=False, admission=None, documented=False),
]


def _swagger_assets() -> Route:
    """The Swagger UI page's files, which BentoML ships beside its page (``/docs`` serves the page)."""
    import bentoml._internal.server

    assets = Path(bentoml._internal.server.__file__).with_name("static_content")
    return Route("/static_content/{file}", "GET", StaticFiles(directory=assets), "asgi", "The /docs page's files",
                 "page", key=False, admission=None, documented=False)


def table() -> list[Route]:
    """Every route, in the order the gateway tries templates: ``/v2`` inference first."""
    endpoints = declared(ZooServe)
    generation_jobs = [jobs.submit_route(route) for route in endpoints
                       if route.path.removeprefix("/generate/") in GENERATOR_FAMILIES]
    return [*oip.ROUTES, *management.ROUTES, *endpoints, *generation_jobs, *jobs.ROUTES, *monitoring.ROUTES, *web.ROUTES,
            _swagger_assets(), *BENTOML_ROUTES]


PATHS_TAKEN = {
    "endpoint": "gateway -> {handler} (body validated with the route's form)",
    "handler": "gateway -> {handler}",
    "asgi": "gateway -> {handler}",
    "bentoml": "gateway -> BentoML's app",
}


def listing(routes: list[Route]) -> str:
    """The table as text: method, path, what guards it, and the path a request takes."""
    rows = [("METHOD", "PATH", "KEY", "ADMISSION", "DEADLINE", "FORMS", "PATH TAKEN")]
    for route in routes:
        handler = route.name if route.via != "asgi" else type(route.handler).__name__
        rows.append((route.method, route.path, "key" if route.key else "open", route.admission or "-",
                     "timed" if route.timed else "-", ", ".join(route.forms) or "-",
                     PATHS_TAKEN[route.via].format(handler=handler)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                     for row in rows)


def main() -> None:
    print(listing(table()))
    print(f"\n{len(table())} routes. Every request goes through the gateway (serving/protocol/gateway.py); "
          "a path outside the table is a 404, a method outside it a 405.", file=sys.stdout)


if __name__ == "__main__":
    main()
