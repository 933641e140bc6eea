"""The changes ZooServe makes inside its dependencies, in one place, each guarded.

BentoML's supported extension points do most of the work: the API worker's whole request path
is a plain ASGI app mounted with ``@bentoml.asgi_app`` (the gateway); the dependency workers are
configured through ``@bentoml.service`` options (``traffic``, ``runner_connection``) and extended
with ``add_asgi_middleware``. What those cannot do is patched here, and only here:

- ``GatewayOutsideLayers``: BentoML wraps every request of a service in per-request layers;
- ``TimeoutDisarmed``: BentoML's timeout keeps every request's state alive for the whole timeout;
- ``EndpointErrorsShaped``: BentoML's endpoint wrapper logs refusals with tracebacks and answers
  in its own shapes (the dependency workers' endpoints);
- ``MetricsPidCached``: prometheus_client asks the kernel for the process id on every update.

Each patch names the upstream code it replaces and keeps a digest of that code's source: the
contract tests (``tests/unit/test_patches.py``) fail, naming the patch, when an upgrade changes
it. At start-up ``check`` refuses a BentoML version the patches were not tested with, unless
``ZOOSERVE_UNTESTED_BENTOML=stock`` asks to run without any of them (under any version; ``apply``
is then not called): the gateway still answers every route with the key, the limits and the
error shape, inside BentoML's layers.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import logging
import os
import typing as t
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

logger = logging.getLogger("bentoml.zooserve")
TESTED_BENTOML = "1.4.40"
UNTESTED = "ZOOSERVE_UNTESTED_BENTOML"  # "stock": run an untested BentoML without the patches


@dataclass(frozen=True)
class Patch:
    """One change inside a dependency: what it replaces, why, and what would retire it."""

    name: str
    targets: dict[str, str]  # "module:qualified.name" of each replaced object -> sha256 of its source
    defect: str
    retire_when: str

    def drift(self) -> list[str]:
        """The targets whose upstream source is no longer the one this patch was written against."""
        return [target for target, digest in self.targets.items() if source_digest(target) != digest]


def _resolve(target: str) -> t.Any:
    module, _, name = target.partition(":")
    value: t.Any = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return _ORIGINALS.get(target, value)


def source_digest(target: str) -> str:
    """sha256 of the source of an upstream object (the original, if a patch has replaced it)."""
    value = _resolve(target)
    if isinstance(value, property):
        value = value.fget
    try:
        return hashlib.sha256(inspect.getsource(value).encode()).hexdigest()
    except (OSError, TypeError):
        return "unavailable"


FACTORY = "_bentoml_impl.server.app:ServiceAppFactory"
PATCHES = (
    Patch(
        "GatewayOutsideLayers",
        {f"{FACTORY}.__call__": "612f235b8e8b0f2890120583fd86bb71d803089170fb4c794690911628ee3892",
         f"{FACTORY}.middlewares": "bce0377ff45b69beb184cb7c8817d7eca51873ed1e2394c732ae58da296c8d31"},
        defect="BentoML wraps each request of a service in request metrics (labelled by the raw path: every "
               "scanned URL became a new series), OpenTelemetry spans (18% of a request's CPU with no exporter), "
               "the access log, a timeout and a concurrency limit, none of which can be switched off by "
               "configuration; the API worker's gateway does each of these itself, once.",
        retire_when="BentoML lets a service opt out of its per-request middlewares (or take over its ASGI app).",
    ),
    Patch(
        "TimeoutDisarmed",
        {"bentoml._internal.server.http.traffic:TimeoutMiddleware.__call__":
         "fd8b9e3da28ed2b44cfd508d641617e049fcd4986138197ce7bb227332505896"},
        defect="TimeoutMiddleware arms loop.call_later per request and never cancels it: every request's task, "
               "context and span stay alive for the whole timeout (600 s), about 4 KB each, so a dependency "
               "worker's memory grew with traffic.",
        retire_when="BentoML cancels the timer when the request ends (asyncio.timeout or handle.cancel()).",
    ),
    Patch(
        "EndpointErrorsShaped",
        {f"{FACTORY}.api_endpoint_wrapper": "18842e99e6086c0fafcf845358ec610d74eb17fdde1e9fefc65c87c4009f36ce",
         f"{FACTORY}.api_endpoint": "e7721288fa866de6ef5072f159bf1b76e5876a9aaf4b4c135df7c5bbd5fcf8f8"},
        defect="api_endpoint_wrapper logs every refused request with a traceback at ERROR and answers a "
               "refusal in its own shapes (a list around the error, a 503's message replaced), so a dependency "
               "worker's 503 reached the client without its reason or Retry-After.",
        retire_when="BentoML lets an exception carry its own HTTP answer (status, headers, body) and logs "
                    "client errors without a traceback.",
    ),
    Patch(
        "MetricsPidCached",
        {"prometheus_client.values:MultiProcessValue":
         "8077cd2c482fc32e0d3ce5383a526a70b0aa97b714902d2a0564e2199977cbdc"},
        defect="multiprocess metric values call os.getpid() on every update to notice a fork: ten system calls "
               "per /house-price/predict request, a few percent of its CPU (strace -c under load).",
        retire_when="prometheus_client caches the process id (os.register_at_fork) itself.",
    ),
)
_ORIGINALS: dict[str, t.Any] = {}  # target -> the upstream object a patch replaced, for the digests
_APPLIED: set[str] = set()


def check() -> bool:
    """Whether to apply the patches: True under the tested BentoML with every target as it was
    written against; False where ``ZOOSERVE_UNTESTED_BENTOML=stock`` asks for BentoML's stock path
    (under any version: an operator may rule the patches out). Otherwise start-up stops here,
    naming what changed."""
    import bentoml

    if os.environ.get(UNTESTED) == "stock":
        logger.warning("%s=stock: serving on BentoML %s's stock path, without ZooServe's patches (slower; the "
                       "key, the limits and the error shape hold)", UNTESTED, bentoml.__version__)
        return False
    drifted = [f"{patch.name} ({', '.join(patch.drift())})" for patch in PATCHES if patch.drift()]
    if bentoml.__version__ == TESTED_BENTOML and not drifted:
        return True
    found = f"BentoML {bentoml.__version__}" + (f"; changed upstream: {'; '.join(drifted)}" if drifted else "")
    raise SystemExit(f"ZooServe was tested with BentoML {TESTED_BENTOML}, and this is {found}. Revisit "
                     f"serving/runtime/patches.py, or set {UNTESTED}=stock to serve without its patches.")


def apply(gateway_type: type) -> None:
    """Every patch, once per process (the server process and each worker import the service); a
    patch applied before is not applied again, and one that failed is tried again."""
    for name, patch in (("GatewayOutsideLayers", lambda: _outside_layers(gateway_type)),
                        ("TimeoutDisarmed", _timeout_disarmed), ("EndpointErrorsShaped", _endpoint_errors_shaped),
                        ("MetricsPidCached", _metrics_pid_cached)):
        if name not in _APPLIED:
            patch()
            _APPLIED.add(name)


# --- GatewayOutsideLayers -------------------------------------------------------------------------

def _outside_layers(gateway_type: type) -> None:
    """A service that mounts a gateway gets the gateway as its whole ASGI app, with BentoML's app
    (its health, metrics and schema routes) behind it, and none of the per-request layers the
    gateway replaces. OpenTelemetry, when a tracing exporter is configured, and the access log,
    when ``ZOOSERVE_ACCESS_LOG=on`` asks for it, wrap the gateway, so they see every route.
    Dependency services keep BentoML's layers."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.server.http.access import AccessLogMiddleware
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
    from bentoml._internal.server.http.traffic import MaxConcurrencyMiddleware, TimeoutMiddleware
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    from serving.settings import Settings

    built_layers, build = ServiceAppFactory.middlewares.fget, ServiceAppFactory.__call__
    _ORIGINALS.update({f"{FACTORY}.middlewares": ServiceAppFactory.middlewares, f"{FACTORY}.__call__": build})

    def gateway_of(factory: t.Any) -> t.Any:
        return next((app for app, *_ in factory.service.mount_apps if isinstance(app, gateway_type)), None)

    replaced = {RunnerTrafficMetricsMiddleware, TimeoutMiddleware, MaxConcurrencyMiddleware, OpenTelemetryMiddleware,
                AccessLogMiddleware}

    def middlewares(self: t.Any) -> list:
        stack = built_layers(self)
        if gateway_of(self) is None:
            return stack
        return [layer for layer in stack if layer.cls not in replaced]

    def app(self: t.Any) -> t.Any:
        gateway = gateway_of(self)
        if gateway is None:
            return build(self)
        gateway.behind(build(self))
        wanted = {OpenTelemetryMiddleware} if BentoMLContainer.tracing.exporter_type.get() else set()
        if Settings.from_env().access_log:
            wanted.add(AccessLogMiddleware)
        outer: t.Any = gateway
        for layer in reversed([layer for layer in built_layers(self) if layer.cls in wanted]):  # outermost first
            outer = layer.cls(outer, *layer.args, **layer.kwargs)
        return outer

    ServiceAppFactory.middlewares = property(middlewares)
    ServiceAppFactory.__call__ = app


# --- TimeoutDisarmed ------------------------------------------------------------------------------

async def _timeout_call(self: t.Any, scope: Scope, receive: Receive, send: Send) -> None:
    """BentoML's contract (504 if no answer starts within the timeout; streaming is not cut off),
    with a deadline that is disarmed when the request ends instead of a timer left armed."""
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    started = False

    async def started_send(message: dict) -> None:
        nonlocal started
        if not started:
            started = True
            deadline.reschedule(None)
        await send(message)

    try:
        async with asyncio.timeout(self.timeout) as deadline:
            await self.app(scope, receive, started_send)
    except TimeoutError:
        if started:
            raise
        await JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"},
                           status_code=504)(scope, receive, send)


def _timeout_disarmed() -> None:
    from bentoml._internal.server.http import traffic

    _ORIGINALS["bentoml._internal.server.http.traffic:TimeoutMiddleware.__call__"] = traffic.TimeoutMiddleware.__call__
    traffic.TimeoutMiddleware.__call__ = _timeout_call


# --- EndpointErrorsShaped -------------------------------------------------------------------------

def _endpoint_errors_shaped() -> None:
    """Endpoint errors answered through ``errors.error_for``: one line, one shape, the status and
    headers the error carries (a server fault still reaches BentoML's wrapper: traceback, 500)."""
    from _bentoml_impl.server.app import ServiceAppFactory

    from serving.errors import error_for, error_response

    api_endpoint = ServiceAppFactory.api_endpoint
    _ORIGINALS[f"{FACTORY}.api_endpoint"] = api_endpoint

    async def endpoint(self: t.Any, name: str, request: t.Any) -> Response:
        try:
            return await api_endpoint(self, name, request)
        except Exception as exc:
            error = error_for(exc)
            if error is None:
                raise
            return error_response(error)

    ServiceAppFactory.api_endpoint = endpoint


# --- MetricsPidCached -----------------------------------------------------------------------------

_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def _metrics_pid_cached() -> None:
    """The process id from a cache that ``os.register_at_fork`` refreshes in a forked child, which
    is what the check is for. Swapped only while no value exists yet: values of two classes would
    write the same files."""
    from prometheus_client import values

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or not _no_values_yet(values.ValueClass):
        return
    _ORIGINALS["prometheus_client.values:MultiProcessValue"] = values.MultiProcessValue
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: _PID[0])


def _no_values_yet(value_class: type) -> bool:
    init = getattr(value_class, "__init__", None)
    code = getattr(init, "__code__", None)
    if code is None or "values" not in code.co_freevars:
        return False  # not the multiprocess class this was written against
    return not init.__closure__[code.co_freevars.index("values")].cell_contents
