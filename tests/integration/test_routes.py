"""``python -m serving.routes`` lists the route table; the OpenAPI document and the live server
agree with it: every documented route is in the table, every route answers on the server, and
what the table says guards a route (the key) is what the server does."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from loadtests.jobs import follow
from serving.routes import table

ROUTES = table()
EXAMPLE_VALUES = {"file": "app.js", "name": "house-price-gbm"}


def _concrete(path: str, version: str) -> str:
    values = {**EXAMPLE_VALUES, "version": version}
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def test_the_listing_names_every_route_and_the_path_it_takes():
    listing = subprocess.run([sys.executable, "-m", "serving.routes"], capture_output=True, text=True, timeout=120,
                             check=True).stdout
    lines = listing.splitlines()
    for route in ROUTES:
        assert any(line.split()[:2] == [route.method, route.path] for line in lines), f"{route.method} {route.path}"
    assert f"{len(ROUTES)} routes" in listing


def test_the_document_lists_exactly_the_documented_routes(client: httpx.Client):
    document = client.get("/docs.json").json()
    listed = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    assert listed == {(route.method, route.path) for route in ROUTES if route.documented}


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: f"{route.method} {route.path}")
def test_every_route_answers_on_the_live_server(client: httpx.Client, route):
    """Each route is reached (no 404 or 405 from the router): GETs answer 200, POSTs with an empty
    JSON body are refused by their own validation, or with 415 where the route takes uploads only
    (the no-op and the forecast answer)."""
    version = client.get("/v2/models/house-price-gbm").json()["versions"][0]
    path = _concrete(route.path, version)
    if route.path == "/static_content/{file}":
        path = route.path.replace("{file}", "swagger-ui.css")
    if route.path == "/labs/{file}":
        path = route.path.replace("{file}", "ex0.png")
    if "{job}" in route.path:  # a finished job of its own
        job = client.post("/generate/gan/jobs", json={"n": 1}).json()["location"]
        assert follow(client, job)["state"] == "done"
        path = route.path.replace("/generate/{family}/jobs/{job}", job)
    if route.method in ("GET", "DELETE"):
        response = client.request(route.method, path)
        assert response.status_code == 200, response.text[:300]
    else:
        response = client.post(path, json={})
        assert response.status_code in ((200, 400) if "application/json" in route.forms or route.via != "endpoint"
                                        else (415,)), response.text[:300]
        assert response.status_code == 200 or "error" in response.json()
    if route.path.endswith("/unload"):  # the session's server goes on serving it for the tests after this one
        assert client.post(path.removesuffix("/unload") + "/load").status_code == 200


def test_what_the_table_guards_with_the_key_is_what_the_server_guards(trained_models, tmp_path):
    from tests.integration.conftest import free_port, start_server, stop, wait_ready

    port, log = free_port(), tmp_path / "serve.log"
    process = start_server(trained_models, port, log, ZOOSERVE_API_KEY="route-key")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        for route in ROUTES:
            path = _concrete(route.path, "any-version").replace("{file}", "swagger-ui.css") \
                if "static_content" in route.path else _concrete(route.path, "any-version")
            response = httpx.request(route.method, url + path, json={} if route.method == "POST" else None)
            assert (response.status_code == 401) == route.key, f"{route.method} {route.path}: {response.status_code}"
    finally:
        stop(process)
