"""The API worker's one middleware: what every request goes through before and after its endpoint.

BentoML wraps each request of an API worker in five layers of its own (request metrics,
OpenTelemetry spans, the access log, a timeout, a concurrency limit) before the Starlette router
and its own endpoint wrapper, and ZooServe had added five more (ids and key, error shape,
admission, cancellation, ``/v2`` routing). Profiled under load (``python -m bench.profile_worker``)
those layers took most of a request's CPU: OpenTelemetry alone 18% with no exporter configured,
the access log's formatting, a metric lookup per layer. In one pass, the ``Gateway``:

- tags the request with an id (``X-Request-ID``), checks the API key, reads the body in full
  under a deadline (408) and a size limit (413) before anything parses it (``access``);
- takes a slot of the request's class (``admission``: generation cannot starve predictions);
- answers within ``timeout_seconds`` or 504 (BentoML's timeout contract), with deadlines kept by
  one timer per worker instead of one per request;
- calls the endpoint: ``/v2`` goes to the protocol app, the async JSON endpoints are validated
  and called directly (the same pydantic models and methods BentoML's wrapper would use), and
  everything else (uploads, the page, docs, health, generation) goes on through BentoML;
- rewrites any 4xx/5xx into the one error shape and logs it once (``errors``);
- observes BentoML's request metrics (same names and labels) once.

A request with an ``Origin`` header goes through BentoML's route, where its CORS layer answers.
``install`` makes BentoML wrap the app of a service that adds the Gateway in the Gateway, outside
Starlette, and leave out the layers it replaces (OpenTelemetry stays when a tracing exporter is
configured, BentoML's access log when ``ZOOSERVE_ACCESS_LOG`` asks for it).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import json
import logging
import re
import secrets
import time
import typing as t

from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access import BODY_METHODS, LARGE_BODY, ClientGone, KeyCheck, read_body, release_freed_memory, replay
from .admission import Slots
from .errors import REQUEST_ID as REQUEST_ID_VAR, ServiceError, error_for, error_response, log_refusal, normalize
from .settings import Settings

logger = logging.getLogger("bentoml.zooserve")
SERVER_FAULT = "An unexpected error has occurred, please check the server log."  # BentoML's words for a 500

if t.TYPE_CHECKING:
    from _bentoml_sdk.method import APIMethod

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # a caller's id is echoed only if it is this tame
KNOWN_PATHS = frozenset({"/", "/docs", "/docs.json", "/schema.json", "/models", "/metrics", "/livez", "/readyz",
                         "/healthz", "/v2", "/v2/health/live", "/v2/health/ready"})
UNMATCHED_PATH = "other"  # the metrics label every path outside the known routes shares
ROUTE_TEMPLATES = (  # paths with a variable part, labelled by their template
    (re.compile(r"^/v2/models/[^/]+/versions/[^/]+(/ready|/infer)?$"),
     "/v2/models/{name}/versions/{version}"),
    (re.compile(r"^/v2/models/[^/]+(/ready|/infer)?$"), "/v2/models/{name}"),
    (re.compile(r"^/static/[^/]+$"), "/static/{file}"),
)
UNTIMED_PATHS = frozenset({"/metrics"})
DEADLINE_TICK = 0.5  # seconds between deadline checks: a 408 or 504 comes at most this late
MAX_CACHED_LABELS = 4096  # paths whose label is remembered (model names make /v2 paths many, not unbounded)
# Ids this worker gives requests that bring none: a random prefix per process and a counter, unique
# across workers and restarts and a tenth of the cost of a uuid4 per request.
_ID_PREFIX = secrets.token_hex(12)  # with the 8-digit counter: 32 hex digits, as a uuid4 was
_ID_COUNTER = itertools.count()


def route_label(path: str, known: t.Collection[str]) -> str:
    """The metrics label of a path: every random URL a scanner tries must not become a new series."""
    if path in known:
        return path
    return next((label for pattern, label in ROUTE_TEMPLATES if pattern.match(path)), UNMATCHED_PATH)


class _Metrics:
    """BentoML's request metrics (``bentoml_service_request_*``), with the labelled series cached:
    a labels() lookup per observation was a visible share of a request."""

    def __init__(self) -> None:
        from bentoml._internal.configuration.containers import BentoMLContainer
        from bentoml._internal.context import server_context

        client = BentoMLContainer.metrics_client.get()
        labels = ["endpoint", "service_name", "service_version", "http_response_code", "runner_name"]
        self.duration = client.Histogram(namespace="bentoml_service", name="request_duration_seconds",
                                         documentation="API HTTP request duration in seconds", labelnames=labels,
                                         buckets=BentoMLContainer.duration_buckets.get())
        self.total = client.Counter(namespace="bentoml_service", name="request_total",
                                    documentation="Total number of HTTP requests", labelnames=labels)
        self.in_progress = client.Gauge(namespace="bentoml_service", name="request_in_progress",
                                        documentation="Total number of HTTP requests in progress now",
                                        labelnames=[label for label in labels if label != "http_response_code"],
                                        multiprocess_mode="livesum")
        self.service = (server_context.bento_name, server_context.bento_version, server_context.service_name)
        self.known = KNOWN_PATHS | set(server_context.service_routes or ())
        self._labels: dict[str, str] = {}  # path -> label of the paths that match a route
        self._done: dict[tuple[str, int], tuple[t.Any, t.Any]] = {}
        self._running: dict[str, t.Any] = {}

    def started(self, path: str) -> str:
        label = self._labels.get(path)
        if label is None:
            label = route_label(path, self.known)
            if label != UNMATCHED_PATH and len(self._labels) < MAX_CACHED_LABELS:
                self._labels[path] = label
        if label not in self._running:
            name, version, runner = self.service
            self._running[label] = self.in_progress.labels(label, name, version, runner)
        self._running[label].inc()
        return label

    def finished(self, label: str, status: int, seconds: float) -> None:
        self._running[label].dec()
        if (label, status) not in self._done:
            name, version, runner = self.service
            self._done[label, status] = (self.total.labels(label, name, version, status, runner),
                                         self.duration.labels(label, name, version, status, runner))
        total, duration = self._done[label, status]
        total.inc()
        duration.observe(seconds)


class Deadlines:
    """Request deadlines checked by one timer task per worker.

    ``asyncio.timeout`` arms and cancels a loop timer per request (about 5 us, a few percent of a
    one-house request); here a request only writes its deadline into a dict, and a task that
    wakes every ``DEADLINE_TICK`` seconds cancels the requests whose deadline has passed, as
    ``asyncio.timeout`` would. Timeouts are tens of seconds, so a tick's lateness does not matter."""

    def __init__(self) -> None:
        self.pending: dict[asyncio.Task, float] = {}
        self.expired: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    def arm(self, task: asyncio.Task, seconds: float) -> None:
        self.pending[task] = time.monotonic() + seconds
        loop = asyncio.get_running_loop()
        if self._sweeper is None or self._sweeper.get_loop() is not loop:  # one sweeper per event loop
            self._sweeper = loop.create_task(self._sweep())

    def disarm(self, task: asyncio.Task) -> None:
        self.pending.pop(task, None)
        self.expired.discard(task)  # a request that ended otherwise leaves nothing behind

    def consume_expiry(self, task: asyncio.Task) -> bool:
        """Whether the task's cancellation was its deadline (and if so, take the cancellation back)."""
        if task not in self.expired:
            return False
        self.expired.discard(task)
        task.uncancel()
        return True

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(DEADLINE_TICK)
            now = time.monotonic()
            for task in [task for task, when in self.pending.items() if when <= now]:
                del self.pending[task]
                self.expired.add(task)
                task.cancel()


@functools.cache
def _request_metrics() -> _Metrics:
    """One set per process: Prometheus refuses a second registration of the same series."""
    return _Metrics()


class _Answer:
    """The client's ``send``, with the request id added, the status kept for the metrics, the
    deadline disarmed once the answer starts, and error bodies rewritten into the one shape."""

    def __init__(self, scope: Scope, send: Send, request_id: str, deadlines: Deadlines, task: asyncio.Task) -> None:
        self.scope, self.send, self.id_header = scope, send, (b"x-request-id", request_id.encode())
        self.status = 0
        self.deadlines, self.task = deadlines, task
        self._error_start: Message | None = None
        self._error_chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.deadlines.disarm(self.task)  # BentoML's contract: a started answer is not cut off
            message = {**message, "headers": [*message.get("headers", []), self.id_header]}
            if self.status >= 400:
                self._error_start = message
                return
        elif self._error_start is not None:
            self._error_chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send_shaped_error()
            return
        await self.send(message)

    async def _send_shaped_error(self) -> None:
        start = t.cast(Message, self._error_start)
        shaped = normalize(start["status"], b"".join(self._error_chunks))
        log_refusal(self.scope, start["status"], shaped["error"])
        body = json.dumps(shaped).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await self.send({**start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    @property
    def started(self) -> bool:
        return self.status != 0


class Gateway:
    """See the module's docstring. ``apis``: the service's BentoML API methods, for the direct path."""

    def __init__(self, app: ASGIApp, apis: dict[str, "APIMethod"], settings: Settings, limits: dict[str, int],
                 direct_exclude: t.Callable[[str], bool] = lambda _path: False) -> None:
        from .oip import dispatch

        self.app, self.oip = app, dispatch
        self.key = KeyCheck(settings)
        self.max_body, self.body_timeout = settings.max_body_bytes, settings.body_timeout_seconds
        self.timeout = settings.timeout_seconds
        self.slots = Slots(limits)
        self.deadlines = Deadlines()
        self.direct = {api.route: _DirectCall(api) for api in apis.values()
                       if inspect.iscoroutinefunction(api.func) and not direct_exclude(api.route)
                       and not api.input_spec.multipart_fields}
        self._metrics: _Metrics | None = None  # BentoML sets the metrics directory after this is built

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan, websockets
            await self.app(scope, receive, send)
            return
        if self._metrics is None:
            self._metrics = _request_metrics()
        started = time.perf_counter()
        headers = _headers(scope)
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if given and REQUEST_ID.match(given) else f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        REQUEST_ID_VAR.set(request_id)
        task = t.cast(asyncio.Task, asyncio.current_task())
        answer = _Answer(scope, send, request_id, self.deadlines, task)
        path = scope["path"]
        label = self._metrics.started(path) if path not in UNTIMED_PATHS else None
        try:
            await self._handle(scope, receive, answer, headers, task)
        except Exception:
            logger.exception("%s %s failed [request %s]", scope.get("method"), path, request_id)
            if not answer.started:
                await error_response(ServiceError(SERVER_FAULT, status=500))(scope, receive, answer)
        finally:
            self.deadlines.disarm(task)
            if label is not None:
                self._metrics.finished(label, answer.status or 499, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, answer: _Answer, headers: dict[bytes, bytes],
                      task: asyncio.Task) -> None:
        refusal = self.key.refusal(scope, headers)
        length = headers.get(b"content-length", b"")
        if refusal is None and length.isdigit() and int(length) > self.max_body:
            refusal = ServiceError(f"request body of {int(length)} bytes is over the {self.max_body} byte limit", 413)
        if refusal is not None:
            await self.key.with_cors(error_response(refusal), headers)(scope, receive, answer)
            return
        body, slot = None, None
        # One deadline per request, moved once: first the body's (408), then the answer's (504).
        self.deadlines.arm(task, self.body_timeout)
        try:
            if scope["method"] in BODY_METHODS:
                body = await read_body(receive, self.max_body)
            self.deadlines.arm(task, self.timeout)
            slot = self.slots.take(scope["path"])
            await self._route(scope, receive if body is None else replay(body, receive), answer, headers, body)
        except ClientGone:
            return
        except ServiceError as error:  # a body over the limit, or no slot left
            await self.key.with_cors(error_response(error), headers)(scope, receive, answer)
        except asyncio.CancelledError:
            if not self.deadlines.consume_expiry(task) or answer.started:
                raise
            error = (ServiceError(f"request body not received within {self.body_timeout} s", status=408)
                     if body is None and scope["method"] in BODY_METHODS else
                     ServiceError(f"Not able to process the request in {self.timeout} seconds", status=504))
            await self.key.with_cors(error_response(error), headers)(scope, receive, answer)
        finally:
            self.slots.release(slot)
            if body is not None and len(body) > LARGE_BODY:
                del body
                await asyncio.to_thread(release_freed_memory)  # a syscall that walks the heap: not on the loop

    async def _route(self, scope: Scope, receive: Receive, answer: _Answer, headers: dict[bytes, bytes],
                     body: bytes | None) -> None:
        path = scope["path"]
        if path == "/v2" or path.startswith("/v2/"):
            await self.oip(scope, receive, answer, body)
            return
        direct = self.direct.get(path)
        if (direct is None or scope["method"] != "POST" or b"origin" in headers  # BentoML routes APIs as POST
                or not headers.get(b"content-type", b"application/json").startswith(b"application/json")):
            await self.app(scope, receive, answer)
            return
        try:
            response = await direct(body or b"")
        except Exception as exc:
            error = error_for(exc)
            if error is None:
                raise  # a fault of the server: logged with its traceback, answered 500
            response = error_response(error)
        await response(scope, receive, answer)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {key.lower(): value for key, value in scope["headers"]}


class _DirectCall:
    """What BentoML's endpoint wrapper does for an async JSON API, without its per-request layers:
    validate the body with the API's own input model, call the method, serialise its answer."""

    def __init__(self, api: "APIMethod") -> None:
        self.api = api
        self.method: t.Callable[..., t.Awaitable[t.Any]] | None = None  # bound on the first call

    async def __call__(self, body: bytes) -> Response:
        data = self.api.input_spec.model_validate_json(body or b"{}")
        if self.method is None:
            import bentoml

            self.method = getattr(bentoml.get_current_service(), self.api.name).local
        output = await self.method(**{name: getattr(data, name) for name in type(data).model_fields})
        if isinstance(output, Response):
            return output
        if isinstance(output, BaseModel):
            return Response(output.model_dump_json().encode(), media_type="application/json")
        from _bentoml_impl.serde import JSONSerde

        return await self.api.output_spec.to_http_response(output, JSONSerde())


def install() -> None:
    """Make BentoML wrap the app of a service that adds the Gateway in the Gateway, outside Starlette,
    with none of the per-request layers it replaces: BentoML's metrics, timeout and concurrency
    layers; OpenTelemetry's unless a tracing exporter is configured; the access log unless
    ``ZOOSERVE_ACCESS_LOG=on``. Dependency services keep BentoML's layers."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.configuration.containers import BentoMLContainer

    if getattr(ServiceAppFactory, "_zooserve_gateway", False):
        return
    built_layers, build = ServiceAppFactory.middlewares.fget, ServiceAppFactory.__call__

    def gateway_options(factory: t.Any) -> dict[str, t.Any] | None:
        return next((options for cls, options in factory.service.middlewares if cls is Gateway), None)

    def middlewares(self: t.Any) -> list:
        stack = built_layers(self)
        if gateway_options(self) is None:
            return stack
        replaced = {"Gateway", "RunnerTrafficMetricsMiddleware", "TimeoutMiddleware", "MaxConcurrencyMiddleware"}
        if not BentoMLContainer.tracing.exporter_type.get():
            replaced.add("OpenTelemetryMiddleware")
        if not Settings.from_env().access_log:
            replaced.add("AccessLogMiddleware")
        return [layer for layer in stack if getattr(layer.cls, "__name__", "") not in replaced]

    def app(self: t.Any) -> t.Any:
        options = gateway_options(self)
        return build(self) if options is None else Gateway(build(self), **options)

    ServiceAppFactory.middlewares = property(middlewares)
    ServiceAppFactory.__call__ = app
    ServiceAppFactory._zooserve_gateway = True
