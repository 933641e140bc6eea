"""Request ids, the optional API key and the request body limit, before anything parses a body.

BentoML has no body-size limit of its own and no authentication, so this ASGI middleware sits in
front of every route: it tags each request with an id (returned as ``X-Request-ID``), refuses an
over-long body with 413 before it is read into memory, and, when ``ZOOSERVE_API_KEY`` is set,
demands ``Authorization: Bearer <key>`` on everything but health and metrics. Its own 401 and
413 answers carry the CORS headers an allowed origin would get from BentoML's CORS layer (which
sits inside this one), so a page on that origin can read why it was refused.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import Settings

logger = logging.getLogger("bentoml.zooserve")
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/v2/health/live", "/v2/health/ready", "/"})
OPEN_PREFIX = "/static/"  # the demo page's files hold no data; it asks for the key itself
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # a caller's id is echoed only if it is this tame


class BodyTooLarge(Exception):
    pass


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        settings = Settings.from_env()
        self.api_key = settings.api_key.encode() if settings.api_key else None
        self.max_body = settings.max_body_bytes
        self.cors_origins = settings.cors_origins
        if self.api_key is None:
            logger.warning("ZOOSERVE_API_KEY is not set: every endpoint is open to anyone who can reach it")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        async def reject(status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
            await _reject(send_with_id, status, message, [*extra, *self._cors_headers(headers.get("origin"))])

        # CORS preflights never carry credentials; the CORS layer inside answers them.
        preflight = scope["method"] == "OPTIONS"
        public = scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIX)
        if self.api_key is not None and not public and not preflight and not self._authorized(headers):
            await reject(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                         [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await reject(413, f"request body of {length} bytes is over the {self.max_body} byte limit")
            return
        received, too_large, answered = 0, False, False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:  # chunked uploads carry no Content-Length to check up front
                too_large = True
                raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # BentoML turns the exception above into a 500; answer the 413 it stands for instead.
            nonlocal answered
            if not too_large:
                await send_with_id(message)
            elif not answered:
                answered = True
                await reject(413, f"request body is over the {self.max_body} byte limit")

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            await guarded_send({"type": "http.response.start"})

    def _cors_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        if origin is None or not (origin in self.cors_origins or "*" in self.cors_origins):
            return []
        return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
                (b"access-control-expose-headers", b"X-Request-ID, X-Seed")]

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key)


async def _reject(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
