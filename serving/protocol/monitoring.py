"""Watching the answers over time: a person's say on an answer, the model's quality measured
from it, and the drift of what it is asked.

``POST /feedback`` stores the true value or label of a logged answer (its ``prediction_id``)
beside the prediction, with an optional comment: the redress the course's ethics chapter asks
for, and the ground truth a served model otherwise never sees. ``GET /models/{name}/live-metrics``
scores the model on the answers that got feedback: accuracy for a classifier, RMSE and MAE for
the regressors and the forecaster. Both need the prediction log (``ZOOSERVE_PREDICTION_LOG``).
``GET /models/{name}/drift`` reports the model's drift window (``serving.monitoring.drift``),
which needs no log.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import bentoml
from starlette.responses import JSONResponse, Response

from serving import schemas
from serving.errors import ServiceError, Unavailable
from serving.monitoring.predictions import LogUnavailable, PredictionLog, UnknownPrediction
from serving.protocol.gateway import Call
from serving.protocol.oip import current_registry
from serving.protocol.routing import JSON, Route

TAG = "monitoring"
CLASSIFICATION = "image-classification"


def _log() -> PredictionLog:
    log: PredictionLog = bentoml.get_current_service().predictions
    if not log.enabled:
        raise ServiceError("this server keeps no prediction log (set ZOOSERVE_PREDICTION_LOG to a database URL)", 404)
    return log


async def give_feedback(call: Call) -> Response:
    request = schemas.FeedbackRequest.model_validate_json(call.body)
    log = _log()
    try:
        feedback_id = await anyio.to_thread.run_sync(log.feedback, request.prediction_id, request.truth,
                                                      request.comment)
    except UnknownPrediction:
        raise ServiceError(f"no logged answer has prediction_id {request.prediction_id!r} (unknown, or older "
                           "than the log's retention)", status=404, field="prediction_id") from None
    except LogUnavailable as error:
        raise Unavailable(f"the prediction log cannot take feedback now ({error}); retry") from None
    receipt = schemas.FeedbackReceipt(feedback_id=feedback_id, prediction_id=request.prediction_id)
    return JSONResponse(receipt.model_dump(), status_code=201)


def score(task: str, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Accuracy (classifiers) or RMSE and MAE (the others) over the items of every scored answer."""
    compared, mismatched = [], 0
    for predicted, truth in pairs:
        truths = truth if isinstance(truth, list) else [truth]
        if predicted is None or len(predicted) != len(truths):
            mismatched += 1
            continue
        compared.extend(zip(predicted, truths))
    figures: dict[str, Any] = {"answers": len(pairs), "items": len(compared), "mismatched": mismatched}
    if not compared:
        return figures
    if task == CLASSIFICATION:  # a digit may come back as 7 or "7"
        return {**figures, "accuracy": sum(str(p) == str(t) for p, t in compared) / len(compared)}
    errors = [float(p) - float(t) for p, t in compared if not isinstance(t, str) or _number(t)]
    if not errors:
        return figures
    return {**figures, "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
            "mae": sum(abs(e) for e in errors) / len(errors)}


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


async def live_metrics(call: Call) -> Response:
    name = call.params["name"]
    log = _log()
    task = current_registry().get(name).card.task  # a model not loaded: its 404 (or 503 while it comes)
    try:
        pairs = await anyio.to_thread.run_sync(log.scored, name)
    except LogUnavailable as error:
        raise Unavailable(f"the prediction log cannot be read now ({error}); retry") from None
    return JSONResponse(schemas.LiveMetrics(model=name, task=task, **score(task, pairs)).model_dump())


async def drift(call: Call) -> Response:
    name = call.params["name"]
    current_registry().get(name)  # a model not loaded: its 404 (or 503 while it comes)
    return JSONResponse(schemas.DriftReport(**bentoml.get_current_service().drift.report(name)).model_dump())


ROUTES = [
    Route("/feedback", "POST", give_feedback, "handler",
          "Say what the right answer to a logged prediction was (stored beside it, with a comment)",
          tag=TAG, forms={JSON: schemas.FeedbackRequest}, answers={JSON: schemas.FeedbackReceipt},
          answer_status=201, answer_note="stored", extra_refusals=("404",),
          examples={JSON: {"prediction_id": "019af8e2c4a14e0b7d2c95f3a8e61b07", "truth": 7}}),
    Route("/models/{name}/live-metrics", "GET", live_metrics, "handler",
          "The model's accuracy or RMSE on the answers people gave feedback on", tag=TAG,
          answers={JSON: schemas.LiveMetrics}, answer_note="the figures", admission=None, body_required=False),
    Route("/models/{name}/drift", "GET", drift, "handler",
          "Drift over the newest requests: out-of-distribution rate, each feature's PSI, predicted classes' PSI",
          tag=TAG, answers={JSON: schemas.DriftReport}, answer_note="the figures", admission=None,
          body_required=False),
]
