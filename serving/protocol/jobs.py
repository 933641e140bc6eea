"""Generation as jobs: submit, read the state, fetch the result later, cancel, and follow the
progress as server-sent events with previews of the digits emerging.

A job takes the body of its synchronous endpoint (``POST /generate/{family}/jobs``) and answers
202 at once; it then runs in the generation worker whether or not its submitter stays (see
``serving.inference.jobs``), and its result is the bytes the synchronous endpoint gives for the
same seed. An event stream holds no generation slot and no deadline (a slot of its own pool,
ZOOSERVE_MAX_CONCURRENCY of them a worker, bounds the streams open at once): it polls the job's state and
sends an event every ``every`` units of progress, a heartbeat comment when nothing else went for
``HEARTBEAT_SECONDS``, and a last event with the result's location.

BentoML's own task endpoints (``@bentoml.task``) were not used (``bench.task_endpoints`` measures
them): they report no progress, their cancel is refused and the work runs on, they cap nothing,
and their store is a file that each server start in the same home deletes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from dataclasses import replace
from typing import Any, AsyncIterator
from urllib.parse import parse_qs

import bentoml
from starlette.responses import JSONResponse, Response, StreamingResponse

from serving import schemas
from serving.errors import REQUEST_ID, FieldError, ServiceError, error_for
from serving.inference import images
from serving.inference.jobs import DONE, FINISHED
from serving.protocol.gateway import PREDICTION_ID, Call, form_for
from serving.monitoring.predictions import issue_for
from serving.protocol.oip import current_log
from serving.protocol.routing import BINARY, JSON, PNG, Route

POLL_SECONDS = 0.25  # how often a stream reads its job's state
HEARTBEAT_SECONDS = 15  # a comment line at least this often: proxies close a silent stream
EVENTS = "text/event-stream"
logger = logging.getLogger("bentoml.zooserve")
TAG = "generation jobs"


def images_answer(pictures: Any, seed: int, model: dict, format: str) -> schemas.GeneratedImages | Response:
    """A PNG grid (seed and model in headers) or JSON with one base64 PNG per digit: what a
    generation endpoint and a job's result answer."""
    if format == "json":
        return schemas.GeneratedImages(images=[base64.b64encode(images.png(p)).decode() for p in pictures],
                                       seed=seed, model=model)
    return Response(images.png(images.grid(pictures)), media_type=PNG,
                    headers={"X-Seed": str(seed), "X-Model": f"{model['name']} {model['version']}"})


def _service() -> Any:
    return bentoml.get_current_service()


async def _generators(method: str, **arguments: Any) -> Any:
    """A call to the generation worker, which holds the jobs (none on a server without generators)."""
    service = _service()
    if not hasattr(service, "generators"):
        raise ServiceError(f"job {arguments.get('job_id')} is unknown (this server has no generative models)", 404)
    return await service.call_generators(method, **arguments)


def _location(family: str, job_id: str) -> str:
    return f"/generate/{family}/jobs/{job_id}"


def _public(status: dict, family: str) -> dict:
    """A job's state as clients read it: where its result and events are."""
    location = _location(family, status["id"])
    return {**status, "location": location, "events": f"{location}/events",
            "result": f"{location}/result" if status["state"] == DONE and not status["discarded"] else None}


async def _state(family: str, job_id: str) -> dict:
    """The job's state; 404 for an id no job has (or one of another family), 410 once expired."""
    status = await _generators("job_status", job_id=job_id)
    return _checked(status, family, job_id)


def _checked(status: dict, family: str, job_id: str) -> dict:
    if "gone" in status:
        raise ServiceError(status["gone"], status=410 if status["expired"] else 404)
    if status["family"] != family:
        raise ServiceError(f"job {job_id} is unknown", status=404)
    return _public(status, family)


def submit_route(sync: Route) -> Route:
    """``POST {sync.path}/jobs``: the synchronous generation route's body, as a job."""
    family = sync.path.rsplit("/", 1)[-1]
    json_only = replace(sync, forms={JSON: sync.forms[JSON]})

    async def submit(call: Call) -> Response:
        _, form = form_for(json_only, call.headers.get(b"content-type", JSON.encode()).decode("latin-1"))
        fields = form.model_validate_json(call.body or b"{}")  # a ValidationError: a 400 naming each field
        started, log = time.perf_counter(), current_log()
        prediction_id = issue_for(log)
        status = await _service().submit_job(family, prediction_id=prediction_id, **fields.model_dump())
        if "full" in status:
            raise ServiceError(status["full"], status=429, headers={"Retry-After": str(status["retry_after"])})
        public = _public(status, family)
        headers = {"Location": public["location"]}
        if prediction_id is not None:
            # A job's answer is its parameters and seed (they redraw its digits), logged as it is accepted.
            headers[PREDICTION_ID] = prediction_id
            log.record_row(prediction_id, REQUEST_ID.get(), f"{sync.path}/jobs", status["model"]["name"],
                           status["model"]["version"], time.perf_counter() - started, fields.model_dump_json(),
                           json.dumps({"job": status["id"], "seed": status["seed"]}))
        return JSONResponse(public, status_code=202, headers=headers)

    submit.__qualname__ = f"submit_{family}_job"
    return Route(f"{sync.path}/jobs", "POST", submit, "handler",
                 f"Submit a {family} generation as a job: 202 with its id and Location, at once", TAG,
                 forms=json_only.forms, answers={JSON: schemas.JobState}, answer_note="queued",
                 answer_status=202,
                 admission=None, examples=sync.examples, extra_refusals=("429",))


async def job_state(call: Call) -> Response:
    return JSONResponse(await _state(call.params["family"], call.params["job"]))


async def cancel_job(call: Call) -> Response:
    family, job_id = call.params["family"], call.params["job"]
    await _state(family, job_id)
    return JSONResponse(_checked(await _generators("cancel_job", job_id=job_id), family, job_id))


async def job_result(call: Call) -> Response:
    family, job_id = call.params["family"], call.params["job"]
    status = await _state(family, job_id)
    if status["state"] != DONE:
        detail = f": {status['error']}" if status["error"] else ""
        raise ServiceError(f"job {job_id} is {status['state']}{detail}; its result comes once it is done", 409)
    pictures = await _generators("job_pictures", job_id=job_id)
    if not len(pictures):  # expired between the two calls
        raise ServiceError(f"job {job_id} expired: its result is no longer kept", 410)
    answer = images_answer(pictures, status["seed"], status["model"], status["format"])
    return answer if isinstance(answer, Response) else Response(answer.model_dump_json(), media_type=JSON)


def _options(call: Call) -> tuple[int, bool]:
    """The stream's ``every`` (units of progress between events, default 1) and ``preview``."""
    query = {key: values[-1] for key, values in parse_qs(call.scope.get("query_string", b"").decode("latin-1")).items()}
    every = query.get("every", "1")
    if not re.fullmatch(r"[0-9]{1,6}", every) or not 1 <= int(every) <= 100_000:  # not isdigit(): "²" is a digit
        raise FieldError("every", "must be a whole number from 1 to 100000")
    preview = query.get("preview", "false").lower()
    if preview not in ("true", "false", "1", "0"):
        raise FieldError("preview", "must be true or false")
    return int(every), preview in ("true", "1")


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def job_events(call: Call) -> Response:
    family, job_id = call.params["family"], call.params["job"]
    every, preview = _options(call)
    status = await _state(family, job_id)  # an unknown or expired job is refused before the stream starts
    return StreamingResponse(_stream(status, family, job_id, every, preview), media_type=EVENTS,
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(status: dict, family: str, job_id: str, every: int, preview: bool) -> AsyncIterator[bytes]:
    """Progress events until the job finishes, then one event named after its final state. A
    generation worker that is busy or restarting is asked again at the next poll (the heartbeat
    goes on); any other failure to read the job ends the stream with an ``error`` event."""
    sent_at, shown, quiet_since = None, None, time.monotonic()
    while status["state"] not in FINISHED:
        done = status["progress"]["done"]
        if sent_at is None or done >= sent_at + every:
            if preview and status["preview_at"] not in (None, shown):
                status, shown = await _with_preview(status, job_id), status["preview_at"]
            yield _event("progress", status)
            sent_at, quiet_since = done, time.monotonic()
        elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
        try:
            status = await _state(family, job_id)
        except Exception as exc:  # the stream has started: a refusal can only be an event now
            error = error_for(exc)
            if error is not None and error.status in (429, 503):
                continue
            if error is None:
                logger.warning("job %s: cannot read its state: %r", job_id, exc)
            yield _event("error", {"error": str(error) if error is not None else "the job's state cannot be read"})
            return
    yield _event(status["state"], status)


async def _with_preview(status: dict, job_id: str) -> dict:
    """The state with its preview as a base64 PNG grid; without one where it cannot be had now."""
    try:
        pictures = await _generators("job_pictures", job_id=job_id, preview=True)
    except Exception as exc:  # a busy or restarting worker: the next event brings a preview
        logger.info("job %s: no preview this time: %r", job_id, exc)
        return status
    if not len(pictures):
        return status
    return {**status, "preview": base64.b64encode(images.png(images.grid(pictures))).decode()}


JOB = "/generate/{family}/jobs/{job}"
# Each event of a stream (Open API 3.1 reads an event stream's schema as one event's): its name and
# its data, a job's state as JSON (or, for "error", the error shape).
EVENT_SCHEMA = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"enum": ["progress", "done", "failed", "cancelled", "error"]},
    "data": {"type": "string", "contentMediaType": JSON, "contentSchema": {"oneOf": [
        {"$ref": "#/components/schemas/JobState"}, {"$ref": "#/components/schemas/Error"}]}}}}
STATE = {"tag": TAG, "admission": None}
ROUTES = [
    Route(JOB, "GET", job_state, "handler", "A job's state, progress and time left", answers={JSON: schemas.JobState},
          answer_note="the job", extra_refusals=("410",), **STATE),
    Route(JOB, "DELETE", cancel_job, "handler",
          "Cancel a job (the sampler stops at its next step), or discard a finished one's result",
          answers={JSON: schemas.JobState}, answer_note="the job, cancelled", extra_refusals=("410",), **STATE),
    Route(f"{JOB}/result", "GET", job_result, "handler", "A done job's digits: the synchronous endpoint's bytes",
          answers={PNG: BINARY, JSON: schemas.GeneratedImages}, answer_headers=("X-Seed", "X-Model"),
          answer_note="the job's format: a PNG grid, or JSON", extra_refusals=("409", "410"), **STATE),
    Route(f"{JOB}/events", "GET", job_events, "handler",
          "The job's progress as server-sent events (previews of the digits with preview=true), then its end",
          answers={EVENTS: EVENT_SCHEMA}, answer_note="an event stream", timed=False,
          extra_refusals=("410", "429"), query=(
              {"name": "every", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                             "maximum": 100_000, "default": 1},
               "description": "units of progress (steps, or images) between two progress events"},
              {"name": "preview", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
               "description": "add to progress events a PNG grid of the digits as predicted at that step"}),
          **{**STATE, "admission": "streams"}),
]
