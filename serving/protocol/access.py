"""Who may call, and how much they may send: the API key, CORS, the body limit and the body deadline.

BentoML has no body-size limit of its own and no authentication; the ``gateway`` uses these
pieces in front of every route: the body is read in full under a deadline (408 for a client that
stalls; see ``admission``) and refused with 413 past the limit before it is held in memory;
when ``ZOOSERVE_API_KEY`` is set, ``Authorization: Bearer <key>`` is demanded on every route
the table marks with ``key`` (all but health, metrics and the page); and browsers on the origins
of ``ZOOSERVE_CORS_ORIGINS`` get their preflights answered and every answer readable, refusals
included.
"""

from __future__ import annotations

import hmac
import logging

from starlette.responses import Response
from starlette.types import Receive

from serving.errors import ServiceError, error_response
from serving.settings import Settings

logger = logging.getLogger("bentoml.zooserve")
ALLOWED_METHODS, ALLOWED_HEADERS = "GET, POST, OPTIONS", "Authorization, Content-Type, X-Request-ID"
EXPOSED_HEADERS = b"X-Request-ID, X-Seed, X-Model"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
LARGE_BODY = 1 << 20  # bytes: a body this large leaves megabytes of parsed copies behind it


class ClientGone(Exception):
    """The client disconnected before its request was complete: nothing to answer."""


class KeyCheck:
    """The API key (``Authorization: Bearer <key>``), when ``ZOOSERVE_API_KEY`` is set."""

    def __init__(self, settings: Settings) -> None:
        self.api_key = settings.api_key.encode() if settings.api_key else None
        if self.api_key is None:
            logger.warning("ZOOSERVE_API_KEY is not set: every endpoint is open to anyone who can reach it")

    def refusal(self, headers: dict[bytes, bytes]) -> ServiceError | None:
        if self.api_key is None:
            return None
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key):
            return None
        return ServiceError("missing or wrong API key: send 'Authorization: Bearer <key>'", status=401,
                            headers={"WWW-Authenticate": "Bearer"})


class Cors:
    """Cross-origin access for the origins of ``ZOOSERVE_CORS_ORIGINS`` (``*``: any): their
    preflights are answered here (they never carry the key) and every answer to them, refusals
    included, carries the headers that let the page read it."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.origins = frozenset(origins)

    def _allowed(self, headers: dict[bytes, bytes]) -> bytes | None:
        origin = headers.get(b"origin")
        if origin is None or not self.origins:
            return None
        return origin if "*" in self.origins or origin.decode("latin-1") in self.origins else None

    def headers(self, headers: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        origin = self._allowed(headers)
        if origin is None:
            return []
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"),
                (b"access-control-expose-headers", EXPOSED_HEADERS)]

    def preflight(self, method: str, headers: dict[bytes, bytes]) -> Response | None:
        """The answer to a CORS preflight (None: the request is not one, or no origin is allowed, and
        it is answered as any other OPTIONS request: 405)."""
        if (method != "OPTIONS" or not self.origins or b"access-control-request-method" not in headers
                or b"origin" not in headers):
            return None
        if self._allowed(headers) is None:
            return error_response(ServiceError("this origin may not call the API (ZOOSERVE_CORS_ORIGINS)", 400))
        return Response(status_code=200, headers={"Access-Control-Allow-Methods": ALLOWED_METHODS,
                                                  "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                                                  "Access-Control-Max-Age": "600"})


async def read_body(receive: Receive, max_body: int) -> bytes:
    """The whole body, read before the request takes a slot (the caller's deadline bounds the wait:
    a client that stalls mid-body is answered 408, having held nothing but its connection)."""
    chunks, received = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_body:  # chunked uploads carry no Content-Length to check up front
            raise ServiceError(f"request body is over the {max_body} byte limit", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
