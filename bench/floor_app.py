"""The floor ``make bench`` sets ZooServe's request path against: Starlette on uvicorn (uvloop,
httptools) calling ONNX Runtime, and nothing else.

It serves the same graphs (each card's selected one, and for a house its novelty score, which
ZooServe's answer carries too) from the same models directory with the same JSON bodies as
ZooServe (``/house-price/predict`` with houses, ``/v2/models/{name}/infer`` with JSON FP32
tensors, ``/digits/classify`` and ``/images/classify`` with a multipart upload), its sessions built
by the service's own session factory (same threads, same optimisation). An upload is decoded and
prepared by the service's own functions (Pillow decode, the digits' ink centring, the photos'
resize and crop), and the answer carries what ZooServe's does (calibrated probabilities, the
novelty score), but the floor validates nothing beyond what it needs to compute an answer, has no
middleware, no metrics and no error shape. No Python server on this hardware answers these
requests for less CPU, so ZooServe's throughput and tails are reported as ratios to it.

    ZOOSERVE_MODELS_DIR=models python -m uvicorn bench.floor_app:app --port 8000 --no-access-log
"""

from __future__ import annotations

import json

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.inference.images import decode, to_classifier_input, to_mnist
from serving.repository import layout
from serving.repository.sessions import make_session
from serving.settings import Settings

MODELS = ("house-price-gbm", "mnist-cnn", "transfer-cnn")
SETTINGS = Settings.from_env()


def _load(name: str) -> tuple[dict, object, object | None]:
    """The card, a session of the graph the card has ZooServe serve (its int8 copy, if selected)
    and one of its novelty graph, if it has one."""
    version = layout.newest(SETTINGS.models_dir / name)
    card = json.loads((version / layout.CARD).read_text())
    variant = card.get("served_variant")
    served = card["variants"][variant] if variant else card["graphs"]["model"]
    novelty = card.get("novelty")
    return (card, make_session(version / served["file"], SETTINGS),
            novelty and make_session(version / card["graphs"][novelty["graph"]]["file"], SETTINGS))


LOADED = {name: _load(name) for name in MODELS if layout.card_file(SETTINGS.models_dir, name).exists()}


async def house_price(request: Request) -> JSONResponse:
    card, session, novelty = LOADED["house-price-gbm"]
    order = card["preprocessing"]["feature_order"]
    per_unit = card["preprocessing"]["price_usd_per_unit"]
    houses = (await request.json())["houses"]
    features = np.array([[house[name] for name in order] for house in houses], dtype=np.float32)
    values = session.run(None, {card["graphs"]["model"]["inputs"][0]["name"]: features})[0].ravel()
    predictions = [{"value": float(v), "price_usd": round(float(v) * per_unit, 2)} for v in values]
    if novelty:
        threshold = card["novelty"]["threshold"]
        for prediction, score in zip(predictions, novelty.run(None, {"features": features})[0]):
            prediction.update(novelty=float(score), flagged=bool(score > threshold))
    return JSONResponse({"predictions": predictions})


async def infer(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    card, session, _ = LOADED[name]
    body = await request.json()
    feeds = {tensor["name"]: np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
             for tensor in body["inputs"]}
    outputs = session.run(None, feeds)
    specs = card["graphs"]["model"]["outputs"]
    return JSONResponse({"model_name": name, "outputs": [
        {"name": spec["name"], "shape": list(value.shape), "datatype": "FP32", "data": value.ravel().tolist()}
        for spec, value in zip(specs, outputs)]})


async def _upload(request: Request) -> bytes:
    form = await request.form()
    try:
        return await form["image"].read()
    finally:
        await form.close()


def _classified(name: str, batch: np.ndarray) -> dict:
    """A CNN's calibrated probabilities and novelty score for one prepared picture."""
    card, session, novelty = LOADED[name]
    logits, features = session.run(None, {card["graphs"]["model"]["inputs"][0]["name"]: batch})
    scaled = logits[0] / card["probability_calibration"]["temperature"]
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    score = float(novelty.run(None, {"features": features})[0][0])
    return {"probabilities": probabilities.tolist(), "novelty": score, "flagged": score > card["novelty"]["threshold"]}


async def digits(request: Request) -> JSONResponse:
    answer = _classified("mnist-cnn", to_mnist(decode(await _upload(request)))[None])
    return JSONResponse({"digit": int(np.argmax(answer["probabilities"])), **answer})


async def photos(request: Request) -> JSONResponse:
    prep = LOADED["transfer-cnn"][0]["preprocessing"]
    picture = to_classifier_input(decode(await _upload(request)), prep["resize"], prep["crop"], prep["mean"], prep["std"])
    answer = _classified("transfer-cnn", picture[None])
    return JSONResponse({"label": LOADED["transfer-cnn"][0]["labels"][int(np.argmax(answer["probabilities"]))],
                         **answer})


async def ready(_: Request) -> JSONResponse:
    return JSONResponse({"ready": True})


app = Starlette(routes=[Route("/house-price/predict", house_price, methods=["POST"]),
                        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
                        Route("/digits/classify", digits, methods=["POST"]),
                        Route("/images/classify", photos, methods=["POST"]),
                        Route("/readyz", ready)])
