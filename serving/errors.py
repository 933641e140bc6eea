"""One error mechanism for the whole service: ``{"error": "<what, naming the field>", "detail": [...]}``.

Code that refuses a request raises ``ServiceError`` (or a subclass) with the HTTP status and the
field at fault; ``error_for`` turns that, a pydantic ``ValidationError`` or a known client or
environment fault into the one JSON shape. The gateway answers every refusal of every route
through it (and the dependency workers' endpoints, through ``runtime.patches``); what another
layer answers in another shape (BentoML's health routes, the page's files) it rewrites into the
same shape on the way out, and it logs every refused request as one line with its request id: a
client's mistake is not a server error and carries no traceback.
"""

from __future__ import annotations

import contextvars
import json
import logging
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Scope

logger = logging.getLogger("bentoml.zooserve")
MAX_LISTED = 5  # validation errors spelled out in "error"; "detail" keeps them all
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("zooserve_request_id", default="-")


class ServiceError(Exception):
    """A request the service refuses: ``status`` is the HTTP status, ``field`` the part at fault."""

    def __init__(self, message: str, status: int = 400, field: str | None = None, kind: str = "value_error",
                 headers: dict[str, str] | None = None, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.field, self.kind, self.headers, self.detail = status, field, kind, headers or {}, detail

    def body(self) -> dict[str, Any]:
        message = str(self)
        if self.detail:
            return {"error": message, "detail": self.detail}
        if self.field is None:
            return {"error": message}
        prefix = f"{self.field}: "
        bare = message[len(prefix):] if message.startswith(prefix) else message
        return {"error": prefix + bare, "detail": [{"field": self.field, "message": bare, "type": self.kind}]}


class FieldError(ServiceError):
    """A 400 shaped like pydantic's, for checks the schema cannot make (they need the model card)."""

    def __init__(self, field: str, message: str, kind: str = "value_error", status: int = 400) -> None:
        super().__init__(message, status=status, field=field, kind=kind)


class Unavailable(ServiceError):
    """The server cannot answer now (a model not loaded, a worker restarting); the client may retry."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, status=503, headers={"Retry-After": str(retry_after)})


def validation_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Pydantic's errors as the service's shape, naming each field (not BentoML's model name)."""
    detail = [{"field": ".".join(str(part) for part in error.get("loc", ())) or "body",
               "message": error.get("msg", ""), "type": error.get("type", "")} for error in errors]
    shown = "; ".join(f"{e['field']}: {e['message']}" for e in detail[:MAX_LISTED])
    more = f" (and {len(detail) - MAX_LISTED} more)" if len(detail) > MAX_LISTED else ""
    return {"error": shown + more, "detail": detail}


def error_for(exc: BaseException) -> ServiceError | None:
    """The client-facing error an exception stands for, or None for a fault of the server itself."""
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError

    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ValidationError):
        shaped = validation_body(exc.errors(include_context=False, include_input=False))
        return ServiceError(shaped["error"], detail=shaped["detail"])
    if isinstance(exc, BentoMLException) and (exc.error_code < 500 or exc.error_code == 503):
        # A dependency worker's refusal, passed on; its "too many" and "unavailable" name no wait.
        retry = {"Retry-After": "1"} if exc.error_code in (429, 503) else None
        return ServiceError(str(exc), status=int(exc.error_code), headers=retry)
    if isinstance(exc, HTTPException) and 400 <= exc.status_code < 500:  # Starlette's (the page's files)
        return ServiceError(str(exc.detail), status=exc.status_code)
    if isinstance(exc, RecursionError):
        return ServiceError("request body is nested too deeply")
    return None


def error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def normalize(status: int, body: bytes) -> dict[str, Any]:
    """Turn an error body from another layer into the service's shape."""
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = body.decode("utf-8", "replace").strip()
    if isinstance(payload, list) and len(payload) == 1:  # BentoML wraps some errors in a list
        payload = payload[0]
    if isinstance(payload, dict):
        detail = payload.get("detail")
        if isinstance(detail, list) and detail and all(isinstance(item, dict) and "loc" in item for item in detail):
            return validation_body(detail)
        if "error" in payload:
            return payload
        if isinstance(detail, str):
            return {"error": detail}
    return {"error": str(payload) if payload else HTTPStatus(status).phrase}


def log_refusal(scope: Scope, status: int, message: str) -> None:
    """One line per refused request; 5xx at WARNING (their cause, if any, was logged where it arose)."""
    level = logging.WARNING if status >= 500 else logging.INFO
    logger.log(level, "%s %s -> %d %s [request %s]", scope.get("method", ""), scope.get("path", ""), status,
               message[:300], REQUEST_ID.get())
