"""The API worker's gateway in-process, around small ASGI apps: deadlines (408, 504) kept by its
sweeper, error bodies from inner layers rewritten into the one shape, request ids."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving import gateway
from serving.settings import Settings


def _gateway(app, **settings) -> gateway.Gateway:
    return gateway.Gateway(app, apis={}, settings=Settings(**settings), limits={"predict": 2, "generation": 1})


async def _call(app, method: str = "POST", body: list[bytes] | None = None, headers: list | None = None,
                path: str = "/passengers/forecast", stall_after: int | None = None) -> tuple[int, dict[str, str], dict]:
    """One request through ``app``; the body's chunks are sent in turn, or only ``stall_after`` of them."""
    chunks = list(body if body is not None else [b"{}"])
    given = len(chunks) if stall_after is None else stall_after
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal given
        if given:
            given -= 1
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        await asyncio.sleep(3600)  # a client that stalls
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or [], "query_string": b""}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body_bytes = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body_bytes)


async def _slow(scope, receive, send) -> None:
    await receive()
    await asyncio.sleep(3600)


async def _plain_404(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Not Found"})


def _run(coroutine):
    """The coroutine on an event loop of its own: other tests (the browser's) may leave one running here."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(autouse=True)
def quick_sweeps(monkeypatch):
    monkeypatch.setattr(gateway, "DEADLINE_TICK", 0.05)


def test_an_answer_that_does_not_start_in_time_is_a_504():
    status, headers, body = _run(_call(_gateway(_slow, timeout_seconds=1)))
    assert status == 504 and body["error"].startswith("Not able to process the request")
    assert len(headers["x-request-id"]) == 32


def test_a_stalled_body_is_a_408_and_holds_no_slot():
    app = _gateway(_slow, body_timeout_seconds=1)
    # The first chunk says more follows; the client then never sends it.
    status, _, body = _run(_call(app, body=[b"{", b"}"], stall_after=1))
    assert status == 408 and body["error"].startswith("request body not received within")
    assert app.slots.in_flight["predict"] == 0 and not app.deadlines.pending and not app.deadlines.expired


def test_inner_error_bodies_get_the_one_shape_and_the_callers_id():
    status, headers, body = _run(_call(_gateway(_plain_404), method="GET", path="/nowhere",
                                              headers=[(b"x-request-id", b"trace-42")]))
    assert status == 404 and body == {"error": "Not Found"} and headers["x-request-id"] == "trace-42"
