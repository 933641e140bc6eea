"""The optional API key, the body limit and the body deadline, checked before anything parses a body.

BentoML has no body-size limit of its own and no authentication; the ``gateway`` uses these
pieces in front of every route: the body is read in full under a deadline (408 for a client that
stalls; see ``admission``) and refused with 413 past the limit before it is held in memory, and,
when ``ZOOSERVE_API_KEY`` is set, ``Authorization: Bearer <key>`` is demanded on everything but
health and metrics.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac
import logging
import sys

from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from .errors import ServiceError
from .settings import Settings

logger = logging.getLogger("bentoml.zooserve")
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/v2/health/live", "/v2/health/ready", "/"})
OPEN_PREFIX = "/static/"  # the demo page's files hold no data; it asks for the key itself
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


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body once, then waits on the connection (disconnects)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_body() -> Message:
        return pending.pop() if pending else await receive()

    return receive_body


class KeyCheck:
    """The API key (``Authorization: Bearer <key>``), demanded on everything but health, metrics and
    the page's files when ``ZOOSERVE_API_KEY`` is set; refusals carry the CORS headers an allowed
    origin would get, so a page on that origin can read why it was refused."""

    def __init__(self, settings: Settings) -> None:
        self.api_key = settings.api_key.encode() if settings.api_key else None
        self.cors_origins = settings.cors_origins
        if self.api_key is None:
            logger.warning("ZOOSERVE_API_KEY is not set: every endpoint is open to anyone who can reach it")

    def refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> ServiceError | None:
        # CORS preflights never carry credentials; the CORS layer inside answers them.
        if self.api_key is None or scope["method"] == "OPTIONS":
            return None
        if scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIX):
            return None
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key):
            return None
        return ServiceError("missing or wrong API key: send 'Authorization: Bearer <key>'", status=401,
                            headers={"WWW-Authenticate": "Bearer"})

    def with_cors(self, response: Response, headers: dict[bytes, bytes]) -> Response:
        origin = headers.get(b"origin")
        if origin is not None and (origin.decode("latin-1") in self.cors_origins or "*" in self.cors_origins):
            response.raw_headers.extend([(b"access-control-allow-origin", origin), (b"vary", b"Origin"),
                                         (b"access-control-expose-headers", b"X-Request-ID, X-Seed, X-Model")])
        return response


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
