"""Fixes to BentoML 1.4.40 defects that ZooServe hit, applied when the service module is imported.

Each replaces one small piece of BentoML's request path; the README ("Fixes inside BentoML") gives
each defect, its cause in BentoML's source and how it was measured. ``apply`` runs in every process
(server, API worker, dependency workers) before BentoML builds the ASGI apps, so the fixed classes
are the ones it instantiates.

- ``TimeoutMiddleware`` (``bentoml/_internal/server/http/traffic.py``) arms ``loop.call_later``
  per request and never cancels it: every request's task, context and OpenTelemetry span stay
  alive for the whole timeout (600 s), about 4 KB each, so memory grows with traffic. Replaced by
  ``asyncio.timeout``, which is disarmed when the request ends.
- The multipart parser (``MultipartSerde.parse_request``) downloads any URL sent as text in a
  file field, reads a file sent under a non-file field as JSON (a 500), and passes the client's
  file name to ``tempfile`` as a suffix (a 300-character name: ``ENAMETOOLONG``, a 500). Replaced
  by one that refuses both with 400 naming the field and keeps only a short file extension.
- ``api_endpoint_wrapper`` logs every refused request with a traceback at ERROR and answers in its
  own shapes; endpoint errors now go through ``errors.error_for`` (one line, one shape).
"""

from __future__ import annotations

import asyncio
import json
import re
import typing as t
from pathlib import PurePosixPath

from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .errors import FieldError, error_for, error_response

MAX_PARTS = 16  # multipart parts per request: the widest form (interpolation) has four fields
SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


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


def _safe_upload(field: str, value: t.Any) -> UploadFile:
    if not isinstance(value, UploadFile):
        raise FieldError(field, "must be a file upload, not text (URLs are not fetched)")
    suffix = PurePosixPath(value.filename or "").suffix
    value.filename = suffix if SAFE_SUFFIX.match(suffix) else None  # BentoML makes it a temp-file suffix
    return value


async def _parse_multipart(self: t.Any, request: t.Any, cls: t.Any) -> t.Any:
    from _bentoml_sdk.typing_utils import is_list_type, is_union_type
    from typing_extensions import get_args

    form = await request.form(max_files=MAX_PARTS, max_fields=MAX_PARTS)
    data: dict[str, t.Any] = {}
    for key in form:
        values = form.getlist(key)
        if key in cls.multipart_fields:
            files = [_safe_upload(key, value) for value in values]
            annotation = cls.model_fields[key].annotation
            if is_union_type(annotation):
                annotation = get_args(annotation)[0]
            if not is_list_type(annotation) and len(files) > 1:
                raise FieldError(key, f"one file expected, got {len(files)}")
            data[key] = files if is_list_type(annotation) else files[0]
            continue
        if len(values) > 1:  # BentoML kept the last one: a client's mistake would pass unnoticed
            raise FieldError(key, f"given {len(values)} times; send it once")
        value = values[0]
        if isinstance(value, UploadFile):
            expected = ", ".join(f"'{name}'" for name in cls.multipart_fields) or "none"
            raise FieldError(key, f"is not a file field (file fields: {expected})", "extra_forbidden")
        try:
            data[key] = json.loads(value)
        except ValueError:
            data[key] = value
    return cls.model_validate(data)


def _endpoint_with_errors(api_endpoint: t.Callable) -> t.Callable:
    async def endpoint(self: t.Any, name: str, request: t.Any) -> Response:
        try:
            return await api_endpoint(self, name, request)
        except Exception as exc:
            error = error_for(exc)
            if error is None:
                raise  # a server fault: BentoML logs it with its traceback and answers 500
            return error_response(error)

    return endpoint


def apply() -> None:
    from _bentoml_impl import serde
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.server.http import traffic

    if getattr(ServiceAppFactory, "_zooserve_fixed", False):
        return
    traffic.TimeoutMiddleware.__call__ = _timeout_call
    serde.MultipartSerde.parse_request = _parse_multipart
    ServiceAppFactory.api_endpoint = _endpoint_with_errors(ServiceAppFactory.api_endpoint)
    ServiceAppFactory._zooserve_fixed = True

