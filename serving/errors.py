"""One error shape for the whole service: ``{"error": "<what, naming the field>", "detail": [...]}``.

BentoML answers validation failures with a generic title ("1 validation error for Input") and
other failures in several shapes. ``ErrorShapeMiddleware`` rewrites every error response on
the way out, so clients parse one shape whichever layer produced the error.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


MAX_LISTED = 5  # validation errors spelled out in "error"; "detail" keeps them all


def error_response(status: int, message: str, detail: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


def field_error(field: str, message: str, kind: str) -> JSONResponse:
    """A 400 shaped like pydantic's, for checks the schema cannot make (they need the model card)."""
    return error_response(400, f"{field}: {message}", [{"field": field, "message": message, "type": kind}])


def _location(loc: list) -> str:
    # BentoML validates a model built from the API signature; its name is not the client's field.
    return ".".join(str(part) for part in loc) or "body"


def normalize(status: int, body: bytes) -> dict[str, Any]:
    """Turn any error body into the service's shape, naming the fields a validation error hit."""
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = body.decode("utf-8", "replace").strip()
    if isinstance(payload, list) and len(payload) == 1:  # BentoML wraps some errors in a list
        payload = payload[0]
    if isinstance(payload, dict):
        detail = payload.get("detail")
        if isinstance(detail, list) and detail and all(isinstance(item, dict) and "loc" in item for item in detail):
            errors = [{"field": _location(item["loc"]), "message": item.get("msg", ""), "type": item.get("type", "")}
                      for item in detail]
            shown = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:MAX_LISTED])
            more = f" (and {len(errors) - MAX_LISTED} more)" if len(errors) > MAX_LISTED else ""
            return {"error": shown + more, "detail": errors}
        if "error" in payload:
            return payload
        if isinstance(detail, str):
            return {"error": detail}
    return {"error": str(payload) if payload else HTTPStatus(status).phrase}


class ErrorShapeMiddleware:
    """ASGI middleware that rewrites every 4xx/5xx body into the one error shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                body = json.dumps(normalize(start["status"], b"".join(chunks))).encode()
                headers = [(k, v) for k, v in start.get("headers", [])
                           if k.lower() not in (b"content-length", b"content-type")]
                headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)
