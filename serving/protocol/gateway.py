"""The API worker's request path: every request goes through the ``Gateway``, which finds its
``Route`` in the route table and does, in one pass, what the route says:

- tags the request with an id (``X-Request-ID``) and answers CORS for allowed origins;
- checks the API key, reads the body in full under a deadline (408) and a size limit (413)
  before anything parses it (``access``);
- takes a slot of the route's admission class (``admission``: generation cannot starve predictions);
- answers within ``timeout_seconds`` or 504 (BentoML's timeout contract), with deadlines kept by
  one timer per worker instead of one per request;
- calls the route's handler: a service endpoint (the body validated with the route's form for its
  content type, JSON or multipart), a ``/v2`` or page handler, the page's files, or BentoML's own
  health and metrics routes;
- writes a model endpoint's answer to the prediction log, when the server keeps one, under an id
  it issues (``X-Prediction-ID``; ``serving.monitoring.predictions``), and adds its items to the
  model's drift window (``serving.monitoring.drift``);
- turns every refusal and exception into the one error shape, logged as one line (``errors``);
- observes BentoML's request metrics (same names and labels), labelled by route template.

The gateway is a plain ASGI app that the service mounts with ``@bentoml.asgi_app`` at ``/``,
so under any BentoML version it answers every route with the key, the limits and the error
shape. BentoML wraps a service's app in per-request layers of its own (request metrics,
OpenTelemetry spans, the access log, a timeout, a concurrency limit); profiled under load
(``python -m bench.profile_worker``) they took most of a request's CPU. Under the tested BentoML
version, ``serving.runtime.patches`` puts the gateway outside them instead, with BentoML's
Starlette app behind it for BentoML's own routes only.
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
from dataclasses import dataclass

import anyio
from pydantic import BaseModel
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import REQUEST_ID as REQUEST_ID_VAR
from serving.errors import FieldError, ServiceError, error_for, error_response, log_refusal, normalize
from serving.heap import release_freed_memory
from serving.monitoring.predictions import issue_for
from serving.protocol.access import BODY_METHODS, LARGE_BODY, ClientGone, Cors, KeyCheck, read_body
from serving.protocol.admission import Slots, unless_gone
from serving.protocol.routing import JSON, MULTIPART, UNMATCHED, Route, RouteTable
from serving.schemas import Answer, file_fields
from serving.settings import Settings

logger = logging.getLogger("bentoml.zooserve")
SERVER_FAULT = "An unexpected error has occurred, please check the server log."  # BentoML's words for a 500
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # a caller's id is echoed only if it is this tame
# Marks a request the gateway passed on: BentoML's app mounts the gateway too, and a path BentoML
# does not serve (its metrics switched off by configuration) would come back to it.
PASSED = "zooserve.passed"
DEADLINE_TICK = 0.5  # seconds between deadline checks: a 408 or 504 comes at most this late
MAX_PARTS = 16  # files, and text fields, per multipart request: the widest form has two of each
# Ids this worker gives requests that bring none: a random prefix per process and a counter, unique
# across workers and restarts and a tenth of the cost of a uuid4 per request.
_ID_PREFIX = secrets.token_hex(12)  # with the 8-digit counter: 32 hex digits, as a uuid4 was
_ID_COUNTER = itertools.count()
PREDICTION_ID = "X-Prediction-ID"  # a logged answer's id in the prediction log (also its body's prediction_id)


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
        self._done: dict[tuple[str, int], tuple[t.Any, t.Any]] = {}
        self._running: dict[str, t.Any] = {}

    def started(self, label: str) -> None:
        if label not in self._running:
            name, version, runner = self.service
            self._running[label] = self.in_progress.labels(label, name, version, runner)
        self._running[label].inc()

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


@dataclass(frozen=True)
class Call:
    """What a ``handler`` route gets: the request's path parameters, headers and whole body, and
    the table that routed it."""

    scope: Scope
    params: dict[str, str]
    headers: dict[bytes, bytes]
    body: bytes
    routes: RouteTable


class _Answer:
    """The client's ``send``, with the request id and CORS headers added, the status kept for the
    metrics, the deadline disarmed once the answer starts, and the error bodies that are not JSON
    (BentoML's routes, the page's files) rewritten into the one shape."""

    def __init__(self, scope: Scope, send: Send, extra_headers: list[tuple[bytes, bytes]], deadlines: Deadlines,
                 task: asyncio.Task) -> None:
        self.scope, self.send, self.extra_headers = scope, send, extra_headers
        self.status = 0
        self.deadlines, self.task = deadlines, task
        self._error_start: Message | None = None
        self._error_chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.deadlines.disarm(self.task)  # BentoML's contract: a started answer is not cut off
            message = {**message, "headers": [*message.get("headers", []), *self.extra_headers]}
            if self.status >= 400 and not _is_json(message):  # another layer's words (a file's 404, a 416)
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
    """See the module's docstring.

    ``routes``: the route table; ``fallback``: BentoML's app, for BentoML's own routes (None when
    BentoML routes them before this app); ``instance``: the service whose methods the endpoint
    routes name (default: the service BentoML is running)."""

    def __init__(self, routes: t.Iterable[Route], settings: Settings, limits: dict[str, int],
                 fallback: ASGIApp | None = None, instance: t.Any = None) -> None:
        self.table = RouteTable(routes)
        self.fallback = fallback
        self.key, self.cors = KeyCheck(settings), Cors(settings.cors_origins)
        self.max_body, self.body_timeout = settings.max_body_bytes, settings.body_timeout_seconds
        self.timeout = settings.timeout_seconds
        self.slots = Slots(limits)
        self.deadlines = Deadlines()
        # Sync endpoints run in a worker thread one at a time, as BentoML runs a sync API
        # (``threads=1``): ONNX Runtime already spreads one call over the cores.
        self.sync_limiter: anyio.CapacityLimiter | None = None
        self._instance = instance
        self._methods: dict[str, tuple[t.Callable[..., t.Any], bool]] = {}
        # BentoML's request metrics: observed here once the gateway is outside BentoML's layers
        # (``behind``); inside them, BentoML's own layer observes them.
        self._metrics: _Metrics | None = None
        self.observes = False

    def behind(self, app: ASGIApp) -> None:
        """Put BentoML's app behind the gateway, for BentoML's own routes; the gateway then stands
        in for BentoML's per-request layers, its request metrics included."""
        self.fallback, self.observes = app, True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan, websockets
            if self.fallback is not None:
                await self.fallback(scope, receive, send)
            return
        if scope.get(PASSED):  # BentoML's app sent back a request the gateway passed it: no such route there
            await error_response(ServiceError(f"no route {scope['path']} on this server", status=404))(
                scope, receive, send)
            return
        if self._metrics is None and self.observes:
            self._metrics = _request_metrics()  # BentoML sets the metrics directory after the app is built
        started = time.perf_counter()
        headers = {key.lower(): value for key, value in scope["headers"]}
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if given and REQUEST_ID.match(given) else f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        REQUEST_ID_VAR.set(request_id)
        task = t.cast(asyncio.Task, asyncio.current_task())
        answer = _Answer(scope, send, [(b"x-request-id", request_id.encode()), *self.cors.headers(headers)],
                         self.deadlines, task)
        found = self.table.match(scope["path"], scope["method"])
        route = found.route
        label = None
        if self._metrics is not None and (route is None or route.timed):
            label = route.label if route is not None else UNMATCHED
            self._metrics.started(label)
        try:
            await self._handle(scope, receive, answer, headers, found, task)
        except Exception:
            logger.exception("%s %s failed [request %s]", scope.get("method"), scope["path"], request_id)
            if not answer.started:
                await error_response(ServiceError(SERVER_FAULT, status=500))(scope, receive, answer)
        finally:
            self.deadlines.disarm(task)
            if label is not None:
                t.cast(_Metrics, self._metrics).finished(label, answer.status or 499, time.perf_counter() - started)

    async def _refuse(self, error: ServiceError, scope: Scope, receive: Receive, answer: _Answer) -> None:
        log_refusal(scope, error.status, str(error))
        await error_response(error)(scope, receive, answer)

    async def _handle(self, scope: Scope, receive: Receive, answer: _Answer, headers: dict[bytes, bytes],
                      found: t.Any, task: asyncio.Task) -> None:
        route = found.route
        preflight = self.cors.preflight(scope["method"], headers) if found.allowed or route else None
        if preflight is not None:
            await preflight(scope, receive, answer)
            return
        refusal = _not_routed(scope, found) or (self.key.refusal(headers) if route.key else None)
        length = headers.get(b"content-length", b"")
        if refusal is None and length.isdigit() and int(length) > self.max_body:
            refusal = ServiceError(f"request body of {int(length)} bytes is over the {self.max_body} byte limit", 413)
        if refusal is not None:
            await self._refuse(refusal, scope, receive, answer)
            return
        body, slot, body_read, hold = b"", None, scope["method"] not in BODY_METHODS, _Hold()
        # One deadline per request, moved once: first the body's (408), then the answer's (504).
        self.deadlines.arm(task, self.body_timeout)
        try:
            if not body_read:
                body = await read_body(receive, self.max_body)
                body_read = True
            if route.timed:
                self.deadlines.arm(task, self.timeout)
            else:
                self.deadlines.disarm(task)
            slot = self.slots.take(route.admission)
            call = self._call(route, scope, receive, answer, headers, found.params, body, hold)
            await (unless_gone(call, receive, scope) if route.stops_when_gone else call)
        except ClientGone:
            return
        except asyncio.CancelledError:
            if not self.deadlines.consume_expiry(task) or answer.started:
                raise
            error = (ServiceError(f"request body not received within {self.body_timeout} s", status=408)
                     if not body_read else
                     ServiceError(f"Not able to process the request in {self.timeout} seconds", status=504))
            await self._refuse(error, scope, receive, answer)
        except Exception as exc:
            error = error_for(exc)
            if error is None or answer.started:
                raise  # a fault of the server: logged with its traceback, answered 500
            await self._refuse(error, scope, receive, answer)
        finally:
            if hold.thread is not None and not hold.thread.done():
                # A sync endpoint's thread cannot be stopped: its slot stays taken until it returns.
                hold.thread.add_done_callback(functools.partial(self._thread_done, slot))
            else:
                self.slots.release(slot)
            if len(body) > LARGE_BODY:
                del body
                await asyncio.to_thread(release_freed_memory)  # a syscall that walks the heap: not on the loop

    def _thread_done(self, slot: str | None, thread: asyncio.Future) -> None:
        """An abandoned sync endpoint's thread returned: its slot is free; a failure is logged, once."""
        self.slots.release(slot)
        if not thread.cancelled() and thread.exception() is not None:
            logger.warning("a sync endpoint answered 504 went on to fail: %r", thread.exception())

    async def _call(self, route: Route, scope: Scope, receive: Receive, answer: _Answer, headers: dict[bytes, bytes],
                    params: dict[str, str], body: bytes, hold: "_Hold") -> None:
        if route.via == "endpoint":
            response = await self._endpoint(route, headers, body, hold)
        elif route.via == "handler":
            response = await route.handler(Call(scope, params, headers, body, self.table))
        else:  # an ASGI app: the page's files, or BentoML's own routes
            app = route.handler if route.via == "asgi" else self.fallback
            if app is None:
                raise ServiceError(f"{scope['path']} is answered by BentoML's router", status=404)
            if route.via == "asgi":  # mounted at the template's fixed part, as Starlette's Mount would
                scope = {**scope, "root_path": scope.get("root_path", "") + route.path.split("{")[0].rstrip("/")}
            await app({**scope, PASSED: True}, _replay(body, receive), answer)
            return
        await response(scope, receive, answer)

    async def _endpoint(self, route: Route, headers: dict[bytes, bytes], body: bytes, hold: "_Hold") -> Response:
        """Validate the body with the route's form for its content type, call the method, shape the answer."""
        content_type = headers.get(b"content-type", b"application/json").decode("latin-1")
        kind, form = form_for(route, content_type)
        if kind == MULTIPART:
            data = form.model_validate(await _form_fields(form, content_type, body))
        else:
            data = form.model_validate_json(body or b"{}")
        method, is_async = self._method(route)
        arguments = {name: getattr(data, name) for name in _fields(type(data))}
        started = time.perf_counter()
        if is_async:
            output = await method(**arguments)
        else:
            if self.sync_limiter is None:
                self.sync_limiter = anyio.CapacityLimiter(1)
            # Shielded: a deadline answers 504 at once, but the thread runs on, holding the limiter
            # (and, through ``hold``, the request's slot) until it returns.
            hold.thread = asyncio.ensure_future(anyio.to_thread.run_sync(functools.partial(method, **arguments),
                                                                         limiter=self.sync_limiter))
            output = await asyncio.shield(hold.thread)
        elapsed = time.perf_counter() - started
        log, drift = getattr(self._instance, "predictions", None), getattr(self._instance, "drift", None)
        if route.logged and drift is not None and isinstance(output, Answer):
            drift.observe(data, output)
        prediction_id = issue_for(log) if route.logged and isinstance(output, (Answer, Response)) else None
        if prediction_id is not None:
            if isinstance(output, Answer):
                output.prediction_id = prediction_id
            else:
                output.headers[PREDICTION_ID] = prediction_id
        if isinstance(output, Response):
            if prediction_id is not None:
                log.record(prediction_id, REQUEST_ID_VAR.get(), route.path, data, output, elapsed)
            return output
        if not isinstance(output, BaseModel):
            return JSONResponse(output)
        sent = output.model_dump_json()
        if prediction_id is None:
            return Response(sent.encode(), media_type=JSON)
        # The log keeps the body as it came and the answer as it goes: nothing serialised twice.
        log.record(prediction_id, REQUEST_ID_VAR.get(), route.path, data, output, elapsed,
                   json_body=body if kind == JSON else None, answer_json=sent)
        return Response(sent.encode(), media_type=JSON, headers={PREDICTION_ID: prediction_id})

    def _method(self, route: Route) -> tuple[t.Callable[..., t.Any], bool]:
        """The running service's method for an endpoint route, and whether it is async (looked up
        once: per request, ``inspect`` alone cost a few percent of a one-house request)."""
        found = self._methods.get(route.path)
        if found is None:
            if self._instance is None:
                import bentoml

                self._instance = bentoml.get_current_service()
            method = getattr(self._instance, route.handler.__name__)
            found = self._methods[route.path] = (method, inspect.iscoroutinefunction(method))
        return found


class _Hold:
    """What a request leaves running when its answer is given up: a sync endpoint's thread."""

    thread: asyncio.Future | None = None


def form_for(route: Route, content_type: str) -> tuple[str, t.Any]:
    """The body's media type and the route's form for it; 415 for a type the route takes no form for."""
    kind = content_type.partition(";")[0].strip().lower()
    form = route.forms.get(kind)
    if form is None:
        raise ServiceError(f"Content-Type {kind or '(none)'} is not taken here; send {' or '.join(route.forms)}",
                           status=415)
    return kind, form


def _is_json(start: Message) -> bool:
    return any(key.lower() == b"content-type" and value.startswith(b"application/json")
               for key, value in start.get("headers", []))


@functools.cache
def _fields(form: type[BaseModel]) -> tuple[str, ...]:
    return tuple(form.model_fields)


def _not_routed(scope: Scope, found: t.Any) -> ServiceError | None:
    if found.route is not None:
        return None
    if found.allowed:
        return ServiceError(f"{scope['method']} is not allowed on {scope['path']} (allowed: "
                            f"{', '.join(found.allowed)})", status=405, headers={"Allow": ", ".join(found.allowed)})
    return ServiceError(f"no route {scope['path']} on this server (GET /docs lists them)", status=404)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body once, then waits on the connection (disconnects)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_body() -> Message:
        return pending.pop() if pending else await receive()

    return receive_body


async def _form_fields(form: type[BaseModel], content_type: str, body: bytes) -> dict[str, t.Any]:
    """A multipart body as the form's fields: the bytes of each file field's upload, and each text
    field read as JSON where it parses (``3`` is a number, ``[1, 2]`` a list), else as text.

    Refused with 400, naming the field: text in a file field (a URL is not fetched), a file in a
    text field, a field sent twice, more than ``MAX_PARTS`` parts, a malformed body."""

    async def stream() -> t.AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(Headers({"content-type": content_type}), stream(), max_files=MAX_PARTS,
                             max_fields=MAX_PARTS)
    parser.spool_max_size = len(body) + 1  # the body is in memory already: no upload goes to a temporary file
    try:
        parts = await parser.parse()
    except MultiPartException as error:
        raise ServiceError(f"malformed multipart body: {error.message}") from None
    files = file_fields(form)
    data: dict[str, t.Any] = {}
    try:
        for name in parts:
            values = parts.getlist(name)
            if len(values) > 1:  # a client's mistake that keeping one value would hide
                raise FieldError(name, f"given {len(values)} times; send it once")
            value = values[0]
            if name in files:
                if not isinstance(value, UploadFile):
                    raise FieldError(name, "must be a file upload, not text (URLs are not fetched)")
                data[name] = await value.read()
            elif isinstance(value, UploadFile):
                expected = ", ".join(f"'{field}'" for field in files) or "none"
                raise FieldError(name, f"is not a file field (file fields: {expected})", "extra_forbidden")
            else:
                try:
                    data[name] = json.loads(value)
                except ValueError:
                    data[name] = value
    finally:
        await parts.close()
    return data
