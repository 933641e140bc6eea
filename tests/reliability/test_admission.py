"""One client cannot block the others: stalled bodies, floods of generation, callers that leave."""

from __future__ import annotations

import socket
import threading
import time

import httpx



def _stalled_connection(port: int) -> socket.socket:
    """A request that declares a body and sends two bytes of it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /house-price/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"")
    return sock


def test_stalled_bodies_hold_no_slot_and_get_408(tight):
    stalled = [_stalled_connection(tight.port) for _ in range(16)]  # 4x the prediction slots
    try:
        time.sleep(0.5)
        with httpx.Client(timeout=10) as client:
            assert [tight.house(client) for _ in range(8)] == [200] * 8
            digits = client.post(f"{tight.url}/digits/classify", json={"pixels": [[0.0] * 28] * 13 + [[255.0] * 28] * 2
                                                                      + [[0.0] * 28] * 13})
            assert digits.status_code == 200, digits.text
        stalled[0].settimeout(10)
        answer = b""
        while b"}" not in answer and (chunk := stalled[0].recv(4096)):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b'"error"' in answer
    finally:
        for sock in stalled:
            sock.close()


def _generate(url: str, results: list, steps: int = 400) -> None:
    try:
        response = httpx.post(f"{url}/generate/diffusion", json={"n": 64, "steps": steps}, timeout=120)
        results.append(response.status_code)
    except httpx.HTTPError as error:
        results.append(type(error).__name__)


def test_a_flood_of_generation_leaves_predictions_answering(tight):
    results: list = []
    threads = [threading.Thread(target=_generate, args=(tight.url, results)) for _ in range(12)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    with httpx.Client(timeout=10) as client:
        assert [tight.house(client) for _ in range(10)] == [200] * 10
    for thread in threads:
        thread.join()
    assert set(results) <= {200, 429} and results.count(200) >= 2, results


def test_generation_is_dropped_when_its_caller_leaves(tight):
    """The Generators worker went on computing for a client that had gone."""
    try:
        httpx.post(f"{tight.url}/generate/diffusion", json={"n": 64, "steps": 1000}, timeout=1.0)
    except httpx.TimeoutException:
        pass
    deadline = time.monotonic() + 30
    while not _cancelled_in_generators(tight.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _cancelled_in_generators(tight.log.read_text()), tight.log.read_text()[-3000:]
    quick = httpx.post(f"{tight.url}/generate/diffusion", json={"n": 1, "steps": 5, "format": "json"}, timeout=60)
    assert quick.status_code == 200
    assert "[ERROR]" not in tight.log.read_text()


def _cancelled_in_generators(log: str) -> bool:
    return any("zooserve-generators" in line and "client gone" in line for line in log.splitlines())


def test_session_refresh_does_not_break_generations_in_flight(plain):
    """BentoML's dependency client replaced its HTTP session every 100 calls, health checks
    included, closing connections under generations in flight: a 500 each."""
    results: list = []
    long = threading.Thread(target=_generate, args=(plain.url, results, 200))
    long.start()
    time.sleep(0.5)
    with httpx.Client(timeout=10) as client:
        for _ in range(150):
            client.get(f"{plain.url}/readyz")
    callers = [threading.Thread(target=lambda: [_gan(plain.url, results) for _ in range(15)]) for _ in range(8)]
    for thread in callers:
        thread.start()
    for thread in [long, *callers]:
        thread.join()
    assert results == [200] * len(results) and len(results) == 121, results


def _gan(url: str, results: list) -> None:
    results.append(httpx.post(f"{url}/generate/gan", json={"n": 4}, timeout=60).status_code)
