"""BentoML's stock path (``ZOOSERVE_UNTESTED_BENTOML=stock``: no patch applied, the gateway mounted
inside BentoML's own layers) still enforces the key and the limits and answers in the one shape."""

from __future__ import annotations

import httpx

from .conftest import serving

HOUSE = {"MedInc": 8.3252, "HouseAge": 41.0, "AveRooms": 6.984, "AveBedrms": 1.024, "Population": 322.0,
         "AveOccup": 2.556, "Latitude": 37.88, "Longitude": -122.23}
KEY = "stock-key"


def test_the_stock_path_keeps_the_key_the_limits_and_the_error_shape(trained_models, tmp_path):
    with serving(trained_models, tmp_path, ZOOSERVE_UNTESTED_BENTOML="stock", ZOOSERVE_API_KEY=KEY,
                 ZOOSERVE_MAX_BODY_BYTES="4096") as served, httpx.Client(base_url=served.url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {KEY}"}
        assert "stock path" in served.log.read_text()
        refused = client.post("/house-price/predict", json={"houses": [HOUSE]})
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
        assert client.post("/house-price/predict", json={"houses": [HOUSE]}, headers=auth).status_code == 200
        too_big = client.post("/house-price/predict", content=b" " * 5000, headers=auth)
        assert too_big.status_code == 413 and "byte limit" in too_big.json()["error"]
        invalid = client.post("/house-price/predict", json={"houses": []}, headers=auth)
        assert invalid.status_code == 400 and invalid.json()["detail"][0]["field"] == "houses"
        assert client.get("/nowhere", headers=auth).json()["error"].startswith("no route /nowhere")
        infer = client.post("/v2/models/house-price-gbm/infer", headers=auth, json={"inputs": [
            {"name": "features", "shape": [1, 8], "datatype": "FP32", "data": list(HOUSE.values())}]})
        assert infer.status_code == 200
        assert client.get("/readyz").status_code == 200 and client.get("/metrics").status_code == 200
