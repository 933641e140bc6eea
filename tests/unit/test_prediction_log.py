"""The prediction log, on SQLite and on a real PostgreSQL server alike: what a record keeps,
feedback beside it, retention, and that a full queue or a database that is down drops records
(counted) without ever failing the caller."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading

import pytest
import sqlalchemy as sa
from starlette.responses import Response

from loadtests.server import free_port
from serving.monitoring import predictions
from serving.monitoring.predictions import RANDOM_BLOCK, PredictionLog, UnknownPrediction
from serving.protocol.monitoring import score
from serving.repository.telemetry import metrics
from serving.schemas import DigitPixels, DigitResponse, DigitUpload, HousePriceRequest, HousePriceResponse

MODEL = {"name": "house-price-gbm", "version": "3", "sha256": "ab" * 32}
HOUSE = {"MedInc": 8.3, "HouseAge": 41.0, "AveRooms": 6.98, "AveBedrms": 1.02, "Population": 322.0,
         "AveOccup": 2.55, "Latitude": 37.88, "Longitude": -122.23}
OOD = {"score": 3.5, "threshold": 5.0, "flagged": False, "outside_training_range": []}


def _counted(outcome: str) -> float:
    return metrics().prediction_log.labels(outcome)._value.get()


def _house_answer(*values: float) -> HousePriceResponse:
    return HousePriceResponse(predictions=[{"value": v, "price_usd": v * 1e5, "out_of_distribution": OOD}
                                           for v in values], level=0.9, model=MODEL)


def _rows(log: PredictionLog, table: str) -> list[dict]:
    with log.engine().connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.select(log.table(table)))]


@pytest.fixture
def log(database):
    return PredictionLog(database)


def test_ids_stay_unique_and_hex_across_the_blocks_of_randomness_they_are_cut_from():
    log = PredictionLog(None)
    ids = [log.issue() for _ in range(2 * RANDOM_BLOCK + 1)]
    assert len(set(ids)) == len(ids) and {len(i) for i in ids} == {32}
    assert all(int(i, 16) >= 0 for i in ids)
    assert len({i[12:] for i in ids}) == len(ids)  # the random parts alone differ too


def test_a_record_keeps_the_answer_and_feedback_is_stored_beside_it(log):
    written = _counted("written")
    request = HousePriceRequest(houses=[HOUSE, HOUSE])
    first, second = log.issue(), log.issue()
    assert first != second and len(first) == 32 and first[:12] <= second[:12]  # sorted by time
    log.record(first, "req-1", "/house-price/predict", request, _house_answer(2.5, 3.0), 0.004)
    sent = _house_answer(1.0, 1.5).model_dump_json()
    log.record(second, "req-2", "/house-price/predict", request, _house_answer(1.0, 1.5), 0.002,
               json_body=b'{"houses": [{"MedInc": 8.3}]}', answer_json=sent)
    log.flush()
    rows = {row["prediction_id"]: row for row in _rows(log, "predictions")}
    row = rows[first]
    assert (row["request_id"], row["endpoint"], row["model"], row["version"]) == (
        "req-1", "/house-price/predict", "house-price-gbm", "3")
    assert set(row) == set(predictions.COLUMNS) and row["predicted"] == [2.5, 3.0]
    assert row["inputs"]["houses"][0] == HOUSE and row["inputs"]["model"] == "gbm"
    assert (row["ood_score"], row["ood_flagged"]) == (3.5, False)
    assert row["outputs"]["model"] == MODEL and row["outputs"]["level"] == 0.9
    # The body as it came and the answer as it was sent are kept as they are, not made again.
    assert rows[second]["inputs"] == {"houses": [{"MedInc": 8.3}]}
    assert rows[second]["outputs"] == json.loads(sent)
    assert _counted("written") == written + 2
    # Feedback: the true values, once and then corrected; the newest counts.
    assert log.feedback(first, [2.0, 3.0], "the first house sold for less") >= 1
    log.feedback(second, [1.0, 1.0], None)
    log.feedback(second, [1.0, 1.5], "corrected")
    assert len(_rows(log, "feedback")) == 3
    figures = score("tabular-regression", log.scored("house-price-gbm"))
    assert (figures["answers"], figures["items"], figures["mismatched"]) == (2, 4, 0)
    assert figures["rmse"] == pytest.approx((0.25 / 4) ** 0.5) and figures["mae"] == pytest.approx(0.125)
    with pytest.raises(UnknownPrediction):
        log.feedback("no-such-id", 1.0, None)


def test_a_picture_is_kept_as_its_digest_unless_asked(database):
    picture = b"\x89PNG not really"
    answer = DigitResponse(digit=7, probabilities=[0.1] * 10, parity={"label": "odd", "probability": 0.9},
                           out_of_distribution={**OOD, "flagged": True}, model={**MODEL, "name": "mnist-cnn"})
    for keep in (False, True):
        log = PredictionLog(database, keep_pictures=keep)
        prediction_id = log.issue()
        log.record(prediction_id, "r", "/digits/classify", DigitUpload(image=picture), answer, 0.01)
        log.flush()
        row = next(row for row in _rows(log, "predictions") if row["prediction_id"] == prediction_id)
        kept = row["inputs"]["image"]
        assert kept["sha256"] == hashlib.sha256(picture).hexdigest() and kept["bytes"] == len(picture)
        assert ("base64" in kept) is keep and row["predicted"] == [7] and row["ood_flagged"] is True
    # Pixels sent as JSON: a digest too, never the body as it came.
    pixels = [[0.0] * 28] * 28
    body = json.dumps({"pixels": pixels}).encode()
    prediction_id = log.issue()
    log.record(prediction_id, "r", "/digits/classify", DigitPixels(pixels=pixels), answer, 0.01, json_body=body)
    log.flush()
    kept = next(row for row in _rows(log, "predictions") if row["prediction_id"] == prediction_id)["inputs"]["pixels"]
    assert kept["sha256"] == hashlib.sha256(json.dumps(pixels, separators=(",", ":")).encode()).hexdigest()


def test_a_png_answer_is_logged_by_its_headers(log):
    answer = Response(b"png", media_type="image/png", headers={"X-Seed": "42", "X-Model": "gan 2"})
    from serving.schemas import GenerateRequest

    log.record(log.issue(), "r", "/generate/gan", GenerateRequest(n=4, seed=42), answer, 0.1)
    log.flush()
    row = _rows(log, "predictions")[0]
    assert (row["model"], row["version"], row["outputs"], row["predicted"]) == ("gan", "2", {"seed": 42}, None)
    assert row["inputs"] == {"n": 4, "seed": 42, "format": "png", "version": None, "digit": None}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_that_is_down_drops_records_without_failing_the_caller(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(predictions, "RETRY_SECONDS", 0.01)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the database's folder should be")
    log = PredictionLog(f"sqlite:///{blocked / 'predictions.db'}" if kind == "sqlite" else
                        f"postgresql://nobody@127.0.0.1:{free_port()}/none")  # no server listens there
    dropped = _counted("dropped_database")
    for _ in range(3):
        log.record(log.issue(), "r", "/house-price/predict", HousePriceRequest(houses=[HOUSE]), _house_answer(1.0),
                   0.001)
    log.flush()
    assert _counted("dropped_database") == dropped + 3


def test_a_full_queue_drops_the_record_at_once(tmp_path, monkeypatch):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", queue_size=1)
    release = threading.Event()
    monkeypatch.setattr(log, "engine", lambda: release.wait() and None)  # a writer stuck on its first batch
    dropped = _counted("dropped_queue_full")
    request = HousePriceRequest(houses=[HOUSE])
    log.record(log.issue(), "r", "/house-price/predict", request, _house_answer(1.0), 0.001)
    waited = threading.Event()
    while log._queue:  # pylint: disable=protected-access  # the writer takes it, then waits
        waited.wait(0.01)
    for _ in range(4):
        log.record(log.issue(), "r", "/house-price/predict", request, _house_answer(1.0), 0.001)
    # One record in the writer's hands, one in the queue: the other three were dropped at once.
    assert _counted("dropped_queue_full") == dropped + 3
    release.set()


def test_retention_deletes_old_answers_and_their_feedback(log):
    request = HousePriceRequest(houses=[HOUSE])
    old = log.issue()
    log.record(old, "r", "/house-price/predict", request, _house_answer(1.0), 0.001)
    log.flush()
    log.feedback(old, 1.2, None)
    with log.engine().begin() as connection:
        connection.execute(log.table("predictions").update().values(
            created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31)))
    fresh = PredictionLog(log.url, retention_days=30)  # a restarted server: its writer expires at once
    new = fresh.issue()
    fresh.record(new, "r", "/house-price/predict", request, _house_answer(2.0), 0.001)
    fresh.flush()
    assert [row["prediction_id"] for row in _rows(fresh, "predictions")] == [new]
    assert _rows(fresh, "feedback") == []


def test_scores_count_what_they_cannot_compare():
    pairs = [([7], 7), ([3], "3"), ([1], 2), ([4, 5], [4]), (None, 1)]
    figures = score("image-classification", pairs)
    assert (figures["answers"], figures["items"], figures["mismatched"], figures["accuracy"]) == (5, 3, 2, 2 / 3)
    assert score("tabular-regression", []) == {"answers": 0, "items": 0, "mismatched": 0}
