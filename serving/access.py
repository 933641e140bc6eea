"""Request ids, the optional API key, the body limit and the body deadline, before anything parses a body.

BentoML has no body-size limit of its own and no authentication, so this ASGI middleware sits in
front of every route: it tags each request with an id (returned as ``X-Request-ID``), reads the
body in full under a deadline (408 for a client that stalls; see ``admission``), refuses an
over-long body with 413 before it is read into memory, and, when ``ZOOSERVE_API_KEY`` is set,
demands ``Authorization: Bearer <key>`` on everything but health and metrics. Its own 401 and
413 answers carry the CORS headers an allowed origin would get from BentoML's CORS layer (which
sits inside this one), so a page on that origin can read why it was refused.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hmac
import logging
import re
import sys
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import REQUEST_ID as REQUEST_ID_VAR, ServiceError, error_response, log_refusal
from .settings import Settings

logger = logging.getLogger("bentoml.zooserve")
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/v2/health/live", "/v2/health/ready", "/"})
OPEN_PREFIX = "/static/"  # the demo page's files hold no data; it asks for the key itself
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # a caller's id is echoed only if it is this tame


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
LARGE_BODY = 1 << 20  # bytes: a body this large leaves megabytes of parsed copies behind it
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None) if sys.platform.startswith("linux") else None


def release_freed_memory() -> None:
    """Give the heap's free pages back to the OS (glibc ``malloc_trim``).

    A large body is copied and parsed (one 12 MB ``/v2`` request: about 100 MB of lists and
    bytes); glibc keeps much of what Python frees in its heap. After one such refused request the
    worker's RSS stayed 74 MB higher without trimming and 37 MB higher with it (README,
    Reliability); the trim costs a few milliseconds, paid by large requests only."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


class ClientGone(Exception):
    """The client disconnected before its request was complete: nothing to answer."""


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body once, then waits on the connection (disconnects)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        settings = Settings.from_env()
        self.api_key = settings.api_key.encode() if settings.api_key else None
        self.max_body = settings.max_body_bytes
        self.body_timeout = settings.body_timeout_seconds
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
        REQUEST_ID_VAR.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        async def reject(status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
            log_refusal(scope, status, message)
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
        try:
            body = await self._read_body(receive) if scope["method"] in BODY_METHODS else None
        except ServiceError as error:
            await reject(error.status, str(error))
            return
        except ClientGone:
            return
        try:
            await self.app(scope, receive if body is None else _replay(body, receive), send_with_id)
        finally:
            if body is not None and len(body) > LARGE_BODY:
                del body
                await asyncio.to_thread(release_freed_memory)  # a syscall that walks the heap: not on the loop

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, read before the request takes a slot: a client that stalls mid-body is
        answered 408 after ``body_timeout`` seconds, having held nothing but its connection."""
        chunks, received = [], 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > self.max_body:  # chunked uploads carry no Content-Length to check up front
                        raise ServiceError(f"request body is over the {self.max_body} byte limit", status=413)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise ServiceError(f"request body not received within {self.body_timeout} s", status=408) from None

    def _cors_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        if origin is None or not (origin in self.cors_origins or "*" in self.cors_origins):
            return []
        return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
                (b"access-control-expose-headers", b"X-Request-ID, X-Seed")]

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key)


async def _reject(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    response = error_response(ServiceError(message, status=status))
    response.raw_headers.extend(extra)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
