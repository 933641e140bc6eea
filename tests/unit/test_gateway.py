"""The API worker's gateway in-process, over a small route table: deadlines (408, 504) kept by its
sweeper, error bodies from inner layers rewritten into the one shape, request ids, 404 and 405,
CORS, and endpoint routes called with their JSON or multipart form."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from pydantic import BaseModel, ConfigDict

from starlette.responses import StreamingResponse

from serving.protocol import gateway
from serving.protocol.routing import JSON, MULTIPART, Route, declared, endpoint
from serving.schemas import NoBody, Upload
from serving.settings import Settings


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    word: str
    times: int = 1


class EchoUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: Upload
    times: int = 1


class Toy:
    """A service with one async and one sync endpoint, declared as ZooServe's are."""

    @endpoint("/echo", forms={JSON: Echo, MULTIPART: EchoUpload}, answers={JSON: {"type": "object"}})
    async def echo(self, word: str | None = None, file: bytes | None = None, times: int = 1) -> dict:
        """Says it again."""
        return {"said": (word or file.decode()) * times}

    @endpoint("/count", forms={JSON: Echo}, answers={JSON: {"type": "object"}})
    def count(self, word: str, times: int) -> dict:
        """Counts, in a worker thread."""
        return {"letters": len(word) * times}


def _gateway(app, **settings) -> gateway.Gateway:
    routes = [Route("/passengers/forecast", "POST", app, "asgi", "a slow app", "test"),
              Route("/nowhere", "GET", app, "asgi", "an app that answers 404 in plain text", "test"),
              *declared(Toy)]
    return gateway.Gateway(routes, Settings(**settings), limits={"predict": 2, "generation": 1}, instance=Toy())


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
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body_bytes or b"{}")


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


def test_paths_and_methods_outside_the_table_are_404_and_405_in_the_one_shape():
    app = _gateway(_slow)
    status, _, body = _run(_call(app, method="GET", path="/random-path"))
    assert status == 404 and body["error"].startswith("no route /random-path")
    status, headers, body = _run(_call(app, method="PUT", path="/echo"))
    assert status == 405 and headers["allow"] == "POST" and "allowed: POST" in body["error"]


def test_endpoints_take_their_json_or_multipart_form():
    app = _gateway(_slow)
    status, _, body = _run(_call(app, path="/echo", body=[b'{"word": "ab", "times": 2}']))
    assert (status, body) == (200, {"said": "abab"})
    form = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="w.txt"\r\n\r\nxy\r\n'
            b'--b\r\nContent-Disposition: form-data; name="times"\r\n\r\n3\r\n--b--\r\n')
    status, _, body = _run(_call(app, path="/echo", body=[form],
                                 headers=[(b"content-type", b"multipart/form-data; boundary=b")]))
    assert (status, body) == (200, {"said": "xyxyxy"})
    status, _, body = _run(_call(app, path="/count", body=[b'{"word": "abc", "times": 2}']))
    assert (status, body) == (200, {"letters": 6})


@pytest.mark.parametrize("form, field, words", [
    (b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nhttp://127.0.0.1:1/x\r\n--b--\r\n', "file",
     "not fetched"),
    (b'--b\r\nContent-Disposition: form-data; name="times"; filename="t"\r\n\r\n3\r\n--b--\r\n', "times",
     "not a file field"),
    (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nx\r\n'
     b'--b\r\nContent-Disposition: form-data; name="file"; filename="b"\r\n\r\ny\r\n--b--\r\n', "file", "2 times"),
])
def test_multipart_mistakes_are_400_naming_the_field(form, field, words):
    status, _, body = _run(_call(_gateway(_slow), path="/echo", body=[form],
                                 headers=[(b"content-type", b"multipart/form-data; boundary=b")]))
    assert status == 400 and body["detail"][0]["field"] == field and words in body["error"]


def test_json_mistakes_are_400_naming_the_field():
    status, _, body = _run(_call(_gateway(_slow), path="/echo", body=[b'{"word": 3}']))
    assert status == 400 and body["detail"][0]["field"] == "word"


def test_cors_is_answered_in_the_gateway_for_allowed_origins_only():
    app = _gateway(_slow, cors_origins=("https://page.test",))
    preflight = [(b"origin", b"https://page.test"), (b"access-control-request-method", b"POST")]
    status, headers, _ = _run(_call(app, method="OPTIONS", path="/echo", headers=preflight, body=[b""]))
    assert status == 200 and headers["access-control-allow-origin"] == "https://page.test"
    status, headers, body = _run(_call(app, path="/echo", body=[b'{"word": "a"}'],
                                       headers=[(b"origin", b"https://page.test")]))
    assert status == 200 and headers["access-control-allow-origin"] == "https://page.test"
    status, headers, _ = _run(_call(app, path="/echo", body=[b'{"word": "a"}'],
                                    headers=[(b"origin", b"https://elsewhere.test")]))
    assert status == 200 and "access-control-allow-origin" not in headers


class Slow:
    """A sync endpoint that outlives its deadline, counting how many of it run at once."""

    running = peak = 0

    @endpoint("/slow", forms={JSON: Echo}, answers={JSON: {"type": "object"}})
    def slow(self, word: str, times: int) -> dict:
        """Sleeps."""
        import time

        Slow.running += 1
        Slow.peak = max(Slow.peak, Slow.running)
        time.sleep(0.4)
        Slow.running -= 1
        return {}

    @endpoint("/wait", forms={JSON: NoBody}, answers={JSON: {"type": "object"}}, body_required=False)
    async def wait(self) -> dict:
        """Waits past any deadline."""
        await asyncio.sleep(3600)
        return {}


def test_a_sync_endpoint_past_its_deadline_keeps_its_slot_and_thread_until_it_returns():
    app = gateway.Gateway(declared(Slow), Settings(timeout_seconds=0.1), limits={"predict": 8, "generation": 1},
                          instance=Slow())

    async def four_then_wait() -> list[int]:
        answers = await asyncio.gather(*(_call(app, path="/slow", body=[b'{"word": "a"}']) for _ in range(4)))
        busy = app.slots.in_flight["predict"]
        await asyncio.sleep(2)
        return [status for status, _, _ in answers] + [busy, app.slots.in_flight["predict"]]

    statuses = _run(four_then_wait())
    assert statuses[:4] == [504] * 4
    assert statuses[4] >= 1 and statuses[5] == 0  # slots held while the threads ran, given back after
    assert Slow.peak == 1  # one at a time, the deadline notwithstanding


async def _slow_stream(_call) -> StreamingResponse:
    async def chunks():
        yield b'{"streamed": '
        await asyncio.sleep(0.3)  # past the 0.1 s deadline, mid-stream
        yield b"true}"

    return StreamingResponse(chunks(), media_type=JSON)


def test_a_stream_runs_past_the_deadline_to_its_end():
    """An event stream is not a 504, however long it runs: the deadline ends once the answer starts."""
    route = Route("/stream", "GET", _slow_stream, "handler", "a slow stream", "test", admission=None, timed=False)
    app = gateway.Gateway([route], Settings(timeout_seconds=0.1), limits={"predict": 2, "generation": 1})
    status, _, body = _run(_call(app, method="GET", path="/stream", body=[b""]))
    assert status == 200 and body == {"streamed": True}


def test_an_empty_body_past_the_deadline_is_a_504_not_a_408():
    app = gateway.Gateway(declared(Slow), Settings(timeout_seconds=1), limits={"predict": 2, "generation": 1},
                          instance=Slow())
    status, _, body = _run(_call(app, path="/wait", body=[b""]))
    assert status == 504, body


def test_preflights_without_cors_are_405_and_strangers_are_refused_in_the_one_shape():
    preflight = [(b"origin", b"https://elsewhere.test"), (b"access-control-request-method", b"POST")]
    status, _, body = _run(_call(_gateway(_slow), method="OPTIONS", path="/echo", headers=preflight, body=[b""]))
    assert status == 405 and "error" in body
    status, _, body = _run(_call(_gateway(_slow, cors_origins=("https://page.test",)), method="OPTIONS",
                                 path="/echo", headers=preflight, body=[b""]))
    assert status == 400 and "origin" in body["error"]


def test_a_content_type_the_route_has_no_form_for_is_a_415():
    status, _, body = _run(_call(_gateway(_slow), path="/count", body=[b"word=a"],
                                 headers=[(b"content-type", b"application/x-www-form-urlencoded")]))
    assert status == 415 and "application/json" in body["error"]


def test_a_request_passed_on_that_comes_back_is_a_404_not_a_loop():
    app = _gateway(_slow)
    scope_passed = {gateway.PASSED: True}

    async def call() -> int:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await app({"type": "http", "method": "GET", "path": "/metrics", "headers": [], **scope_passed}, receive, send)
        return sent[0]["status"]

    assert _run(call()) == 404
