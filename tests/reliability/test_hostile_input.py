"""Odd and hostile input answers 4xx in the one JSON shape, never 5xx, and is logged as one line."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.pictures import GREY_PIXEL_PNG as PNG


BOUNDARY = "zzz"


def _multipart(parts: str) -> tuple[bytes, dict[str, str]]:
    return parts.encode(), {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def _parts(count: int) -> str:
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f{{}}"\r\n\r\nv\r\n'
    return "".join(part.format(i) for i in range(count)) + f"--{BOUNDARY}--\r\n"


MULTIPART = {
    "no boundary": (b"garbage", {"content-type": "multipart/form-data"}),
    "garbage": _multipart("garbage"),
    "10,000 parts": _multipart(_parts(10_000)),
    "unterminated part": _multipart(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"'),
    "part without a name": _multipart(f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nv\r\n--{BOUNDARY}--\r\n"),
}


@pytest.mark.parametrize("body, headers", MULTIPART.values(), ids=MULTIPART.keys())
@pytest.mark.parametrize("path", ["/digits/classify", "/images/classify", "/generate/vae/interpolate"])
def test_malformed_multipart_is_400(plain, path, body, headers):
    response = httpx.post(plain.url + path, content=body, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    assert "error" in response.json()


def test_a_file_under_the_wrong_field_is_named(plain):
    response = httpx.post(f"{plain.url}/digits/classify", files={"file": ("seven.png", PNG, "image/png")})
    assert response.status_code == 400
    assert response.json()["detail"][0]["field"] == "file"


@pytest.mark.parametrize("files, field", [
    ([("image", ("a.png", PNG, "image/png")), ("top_k", (None, "1")), ("top_k", (None, "2"))], "top_k"),
    ([("image", ("a.png", PNG, "image/png")), ("image", ("b.png", PNG, "image/png"))], "image"),
])
def test_a_field_sent_twice_is_refused_not_half_read(plain, files, field):
    response = httpx.post(f"{plain.url}/images/classify", files=files)
    assert response.status_code == 400, response.text
    assert response.json()["detail"][0]["field"] == field


@pytest.mark.parametrize("value", ["http://127.0.0.1:1/x.png", "just text"])
def test_text_in_a_file_field_is_refused_without_fetching(plain, value):
    response = httpx.post(f"{plain.url}/digits/classify", files={"image": (None, value)})
    assert response.status_code == 400 and "not fetched" in response.json()["error"]


def test_a_300_character_file_name_is_served(plain):
    response = httpx.post(f"{plain.url}/digits/classify", files={"image": ("a" * 300 + ".png", PNG, "image/png")})
    assert response.status_code in (200, 400), response.text  # a 1x1 picture may hold no digit: never a 5xx
    assert "error" not in response.json() or "name" not in response.json()["error"]


V2 = "/v2/models/house-price-gbm/infer"
FEATURES = {"name": "features", "shape": [1, 8], "datatype": "FP32", "data": [1.0] * 8}
ODD_V2 = {
    "parameters as a list": {"inputs": [FEATURES], "parameters": [1]},
    "outputs as a number": {"inputs": [FEATURES], "outputs": 5},
    "a list as name": {"inputs": [{**FEATURES, "name": ["features"]}]},
    "input parameters as a string": {"inputs": [{**FEATURES, "parameters": "x"}]},
}


@pytest.mark.parametrize("payload", ODD_V2.values(), ids=ODD_V2.keys())
def test_odd_v2_bodies_are_400(plain, payload):
    response = httpx.post(plain.url + V2, json=payload)
    assert response.status_code == 400 and list(response.json()) == ["error"], response.text


@pytest.mark.parametrize("path", [V2, "/house-price/predict"])
def test_json_nested_100000_deep_is_400(plain, path):
    body = '{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = httpx.post(plain.url + path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()


@pytest.mark.parametrize("method, path", [("GET", "/v2/nope"), ("DELETE", "/v2"), ("GET", "/v2/models/nope")])
def test_v2_404_and_405_are_json(plain, method, path):
    response = httpx.request(method, plain.url + path)
    assert response.status_code in (404, 405) and "error" in response.json()


def test_v2_size_bound_refuses_before_spending_memory(plain):
    """8,000 digits in one request took the worker from 209 MB to 2 GB for good."""
    api = plain.worker("zooserve")
    before = api.memory_info().rss
    payload = {"inputs": [{"name": "image", "shape": [8000, 1, 28, 28], "datatype": "FP32", "data": [0] * 6_272_000}]}
    response = httpx.post(f"{plain.url}/v2/models/mnist-cnn/infer", content=json.dumps(payload, separators=(",", ":")),
                          headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413, response.text
    assert "row limit" in response.json()["error"]
    assert api.memory_info().rss - before < 100 * 2**20
    assert plain.house(httpx.Client(timeout=30)) == 200


def test_random_paths_share_one_metrics_label(plain):
    """Every unknown path became a label: 9,000 of them made /metrics 38 MB."""
    httpx.get(f"{plain.url}/warm-up-the-unmatched-label")
    size = len(httpx.get(f"{plain.url}/metrics").content)
    with httpx.Client(base_url=plain.url) as client:
        for index in range(1000):
            client.get(f"/random-{index}-{index * 7919 % 10007}")
    metrics = httpx.get(f"{plain.url}/metrics").text
    assert "random-" not in metrics
    assert len(metrics) - size < 10_000


def test_client_mistakes_are_one_line_not_a_traceback(plain):
    log = plain.log.read_text()
    assert "[ERROR]" not in log and "Traceback" not in log, log[-3000:]
    assert "-> 400" in log and "[request " in log
