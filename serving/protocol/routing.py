"""What a route is, and how a request's path finds its route.

Every route the API worker answers is one ``Route``: declared once, next to its handler (an
endpoint of the service, a ``/v2`` handler, a page handler, or one of BentoML's own health
routes), and read by everything else: the gateway (key, body, admission, deadline, the call,
metrics labels), the OpenAPI document and ``python -m serving.routes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping

from pydantic import BaseModel

JSON, MULTIPART, PNG, TEXT = "application/json", "multipart/form-data", "image/png", "text/plain"
BINARY = {"type": "string", "format": "binary"}  # the JSON Schema of a file, in a form or an answer
# How the gateway answers a route:
# - "endpoint": a method of the service; the body is validated with the route's form for its
#   content type and the fields are passed as keyword arguments;
# - "handler": ``async def handler(call: Call) -> Response`` (``/v2``, the page's JSON routes);
# - "asgi": an ASGI app (the page's static files);
# - "bentoml": BentoML's own route (health probes and metrics), passed on to BentoML's app.
Via = Literal["endpoint", "handler", "asgi", "bentoml"]
Admission = Literal["predict", "generation", "streams"]
UNMATCHED = "other"  # the metrics label every path outside the table shares
PARAMETER = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Route:
    """One route: everything the layers in front of its handler need to know about it."""

    path: str  # a template: ``{name}`` matches one path segment
    method: str
    handler: Any  # a function, or an ASGI app for ``via="asgi"``; None for BentoML's own routes
    via: Via
    summary: str
    tag: str
    # Content type -> the body's model (or, for a handler's body that no model describes, its JSON Schema).
    forms: Mapping[str, type[BaseModel] | dict[str, Any]] = field(default_factory=dict)
    answers: Mapping[str, type[BaseModel] | dict[str, Any]] = field(default_factory=dict)  # the same, for the 200
    answer_note: str = "the answer"
    answer_status: int = 200  # its success status (202: accepted, to run later)
    answer_headers: tuple[str, ...] = ()  # headers of the 200 worth documenting (``X-Seed``, ``X-Model``)
    key: bool = True  # refused without the API key, when the server has one
    admission: Admission | None = "predict"  # the slot pool it draws on; None: never queues
    timed: bool = True  # answered within ZOOSERVE_TIMEOUT_SECONDS or 504, and observed in the request metrics
    stops_when_gone: bool = False  # its work is cancelled when the client disconnects
    examples: Mapping[str, Any] = field(default_factory=dict)  # content type -> an example body
    body_required: bool = True
    documented: bool = True  # in the OpenAPI document (the page and its files are not API)
    extra_refusals: tuple[str, ...] = ()  # statuses its handler may answer beyond the layers' (409, 410, ...)
    query: tuple[dict[str, Any], ...] = ()  # its query parameters, as OpenAPI parameter objects
    logged: bool = False  # its answers go to the prediction log (every model endpoint's do)

    @property
    def label(self) -> str:
        """The metrics label: the template, so random URLs cannot make new series."""
        return self.path

    @property
    def parameters(self) -> list[str]:
        return PARAMETER.findall(self.path)

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", type(self.handler).__name__) if self.handler else "bentoml"


def endpoint(path: str, *, forms: Mapping[str, type[BaseModel]], answers: Mapping[str, Any], tag: str = "models",
             **options: Any) -> Callable[[Callable], Callable]:
    """Declare a method of the service as the endpoint of ``path`` (POST): the method keeps its
    ``Route`` in ``__route__``, and ``serving.routes`` collects the service's routes from there."""

    def declare(method: Callable) -> Callable:
        summary = options.pop("summary", None) or " ".join((method.__doc__ or "").strip().split("\n\n")[0].split())
        method.__route__ = Route(path, "POST", method, "endpoint", summary=summary, tag=tag, forms=forms,
                                 answers=answers, **{"logged": True, **options})
        return method

    return declare


def declared(owner: type) -> list[Route]:
    """The routes declared with ``endpoint`` on a class's methods, in the order they are defined."""
    return [member.__route__ for member in vars(owner).values() if hasattr(member, "__route__")]


@dataclass(frozen=True)
class Match:
    route: Route | None  # None: the path matched but not the method (405), or nothing matched (404)
    params: dict[str, str]
    allowed: tuple[str, ...] = ()  # the path's methods, when the method was wrong


class RouteTable:
    """Routes found by path and method: fixed paths by dictionary, templates by one regex each."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        seen: set[tuple[str, str]] = set()
        self._fixed: dict[str, dict[str, Route]] = {}
        self._templates: list[tuple[re.Pattern, dict[str, Route]]] = []
        by_template: dict[str, dict[str, Route]] = {}
        for route in self.routes:
            if (route.path, route.method) in seen:
                raise ValueError(f"{route.method} {route.path} is declared twice")
            seen.add((route.path, route.method))
            if route.parameters:
                by_template.setdefault(route.path, {})[route.method] = route
            else:
                self._fixed.setdefault(route.path, {})[route.method] = route
        for template, methods in by_template.items():
            pattern = "^" + PARAMETER.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", template) + "$"
            self._templates.append((re.compile(pattern), methods))

    def match(self, path: str, method: str) -> Match:
        methods, params = self._fixed.get(path), {}
        if methods is None:
            for pattern, candidates in self._templates:
                found = pattern.match(path)
                if found is not None:
                    methods, params = candidates, found.groupdict()
                    break
        if methods is None:
            return Match(None, {})
        route = methods.get("GET" if method == "HEAD" else method)
        return Match(route, params, () if route is not None else tuple(sorted(methods)))

    def __iter__(self):
        return iter(self.routes)
