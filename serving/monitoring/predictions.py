"""The prediction log: every answer of a logged endpoint, kept in a database off the request path.

``ZOOSERVE_PREDICTION_LOG`` names the database as a URL: ``sqlite:///logs/predictions.db`` (what
``make serve`` uses), or ``postgresql://user:password@host/db`` (through psycopg). Alembic
migrations (``migrations/``) create and upgrade its two tables:

- ``predictions``: one row per answer: the id the server issued (``X-Prediction-ID`` and the
  body's ``prediction_id``; never the caller's ``X-Request-ID``, which a caller chooses), the
  request id, time, endpoint, model, version and latency; the inputs (tabular features as they
  came; a picture as its SHA-256 and size, its bytes only with ``ZOOSERVE_LOG_IMAGES=on``; a
  generation's parameters and seed, not its images); the outputs, and the out-of-distribution
  score and flag.
- ``feedback``: what a person said the right answer was, beside the prediction it contests.

A request only puts its record on a bounded queue; one writer thread inserts them in batches. A
full queue or a database that is down never slows or fails a request: the record is dropped,
counted in ``zooserve_prediction_log_records_total{outcome}``, and logged once per outage. Rows
older than ``ZOOSERVE_LOG_RETENTION_DAYS`` are deleted as the writer goes.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import itertools
import json
import logging
import os
import threading
import time
import types
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pydantic_core
from pydantic import BaseModel
from starlette.responses import Response

from serving.repository.telemetry import metrics
from serving.schemas import Answer, file_fields

if TYPE_CHECKING:
    import sqlalchemy as sa

logger = logging.getLogger("bentoml.zooserve")
MIGRATIONS = Path(__file__).with_name("migrations")
BATCH_ROWS = 500  # records one insert writes at most (x 12 columns: under SQLite's 32,766 parameters)
FLUSH_SECONDS = 0.25  # the writer looks for new records this often, unless a full batch waits
RETENTION_CHECK_SECONDS = 3600.0
RETRY_SECONDS = 1.0  # after a failed write, before the writer tries the database again
WRITTEN_WAIT_SECONDS = 5.0  # feedback for a prediction still queued waits this long for its write
SHUTDOWN_FLUSH_SECONDS = 10.0
RANDOM_BYTES = 10  # an id's random part (80 bits)
RANDOM_BLOCK = 1024  # ids' random parts drawn from the OS at once
COLUMNS = ("prediction_id", "request_id", "created_at", "endpoint", "model", "version", "latency_ms", "inputs",
           "outputs", "predicted", "ood_score", "ood_flagged")
IMAGE_FIELDS = ("pixels",)  # JSON fields that carry a picture, beside the multipart file fields
_MIGRATING = threading.Lock()
CONNECT_TIMEOUT_SECONDS = 5  # a PostgreSQL server that does not answer (a partition) fails fast
MIGRATION_LOCK = 7_105_204  # PostgreSQL advisory lock: replicas starting together migrate one at a time


class UnknownPrediction(LookupError):
    """Feedback for an id the log never wrote (or has since deleted)."""


class LogUnavailable(RuntimeError):
    """The database did not answer a read or a feedback write."""


def _sqlalchemy() -> types.ModuleType:
    """SQLAlchemy, imported where a log is kept: the processes that keep none (the server's
    supervisor, the generation worker, a server with the log off) skip its 10 MB."""
    import sqlalchemy

    return sqlalchemy


def database_errors() -> tuple[type[BaseException], ...]:
    """A database down, or a SQLite file that cannot be made."""
    return _sqlalchemy().exc.SQLAlchemyError, OSError


def engine_url(url: str) -> str:
    """``postgresql://`` goes through psycopg 3 (SQLAlchemy's default driver would be psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_for_logging(connection: Any, _record: Any) -> None:
    """Write-ahead logging: a batch commits without rewriting the database file, and feedback and
    live metrics read while the writer writes; NORMAL sync stays safe in that mode (a power cut may
    lose the last batches, never corrupt the file)."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")


def migrate(engine: sa.Engine) -> None:
    """Bring the database's schema to the newest migration (a no-op when it is there)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic keeps the running migration's context in module globals: one migration at a time.
    with _MIGRATING, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _picture(value: bytes, keep: bool) -> dict[str, Any]:
    kept = {"base64": base64.b64encode(value).decode()} if keep else {}
    return {"sha256": hashlib.sha256(value).hexdigest(), "bytes": len(value), **kept}


def _json(value: Any) -> str:
    """``value`` as JSON text, by pydantic-core (a tenth of ``json.dumps``'s time; NaN becomes null)."""
    return pydantic_core.to_json(value, inf_nan_mode="null").decode()


@functools.cache
def _picture_fields(form: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a request form that can carry a picture."""
    return tuple(name for name in (*file_fields(form), *IMAGE_FIELDS) if name in form.model_fields)


def _pictures(data: BaseModel) -> list[str]:
    """The request's fields that carry a picture."""
    return [name for name in _picture_fields(type(data)) if getattr(data, name) is not None]


def logged_inputs(data: BaseModel, keep_pictures: bool) -> str:
    """The request's fields as the log keeps them, as JSON: pictures as a digest (and themselves on demand)."""
    pictures = _pictures(data)
    if not pictures:
        return data.model_dump_json()  # pydantic's own serializer: a few microseconds
    inputs = data.model_dump(mode="json", exclude=set(pictures))
    for name in pictures:
        value = getattr(data, name)
        raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
        inputs[name] = _picture(raw, keep_pictures)
    return json.dumps(inputs)


class PredictionLog:
    """See the module's docstring. ``url`` None: off (nothing issued, nothing kept)."""

    def __init__(self, url: str | None, keep_pictures: bool = False, retention_days: int = 30,
                 queue_size: int = 10_000) -> None:
        self.url = url
        # Parsed now: a malformed URL stops start-up with SQLAlchemy's words, not the writer later.
        self.shown = "" if url is None else _sqlalchemy().engine.make_url(engine_url(url)).render_as_string(hide_password=True)
        self.keep_pictures, self.retention_days = keep_pictures, retention_days
        # Rows in COLUMNS order. A deque, not a queue.Queue: a put on a Queue wakes the waiting writer
        # thread, one thread switch and GIL hand-off per request, which cost a third of the
        # throughput of a small request; the writer wakes on its own every FLUSH_SECONDS instead.
        self._queue: deque[tuple] = deque()
        self.queue_size = queue_size
        self._writer: threading.Thread | None = None
        self._start, self._connecting = threading.Lock(), threading.Lock()
        self._engine: sa.Engine | None = None
        self._tables: dict[str, sa.Table] = {}
        self._pending: dict[str, None] = {}  # issued ids not yet written (or dropped)
        self._written = threading.Condition()  # notified as the writer finishes each batch
        # Set by a reader waiting on a queued record (feedback right after its answer): the writer
        # goes at once instead of at the end of its FLUSH_SECONDS. The request path never sets it.
        self._wanted = threading.Event()
        self._insert: Callable[[int], str] = str  # rows -> the driver-level INSERT, made with the engine
        self._failing = False  # the writer is in an outage: logged once, until a write succeeds
        self._randomness = threading.Lock()  # ids are issued on the event loop and in worker threads
        self._random, self._random_at = "", 0  # hex digits drawn from the OS, and how many are used

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def issue(self) -> str:
        """A new prediction id: the time in milliseconds and 80 random bits, 32 hex digits. Ids that
        sort by time add to the end of the id index: random ones touched a different page of it at
        every row, which doubled the cost of an insert. The random bits come from the OS a block at
        a time: a system call per answer was nearly half of the id's cost."""
        with self._randomness:
            if self._random_at == len(self._random):
                self._random, self._random_at = os.urandom(RANDOM_BYTES * RANDOM_BLOCK).hex(), 0
            block, start = self._random, self._random_at
            self._random_at += 2 * RANDOM_BYTES
        return f"{time.time_ns() // 1_000_000:012x}{block[start:start + 2 * RANDOM_BYTES]}"

    # --- the request path: cheap, never blocking, never raising ---------------------------------

    def record(self, prediction_id: str, request_id: str, endpoint: str, data: BaseModel,
               answer: BaseModel | Response, latency_seconds: float, json_body: bytes | None = None,
               answer_json: str | None = None) -> None:
        """Queue the record of one answer; a full queue drops it (counted). ``json_body``: the
        request's JSON as it came, kept as the inputs where it holds no picture; ``answer_json``:
        the answer as it was sent.

        The row is made here, of strings and numbers only: a queue that held the request and answer
        objects until the writer took them kept a thousand containers alive at a time, and Python's
        garbage collector, which otherwise hardly runs in this worker, then cost more than the
        insert. The JSON is what the request and the answer already were, so a row is cheap."""
        if self._full():
            return
        model, version, outputs, predicted, score, flagged = _answer_fields(answer, answer_json)
        inputs = (json_body.decode("utf-8", "replace") if json_body and not _pictures(data)
                  else logged_inputs(data, self.keep_pictures))
        self._put(prediction_id, request_id, endpoint, model, version, latency_seconds, inputs, outputs,
                  predicted, score, flagged)

    def record_row(self, prediction_id: str, request_id: str, endpoint: str, model: str, version: str,
                   latency_seconds: float, inputs: str, outputs: str, predicted: list[Any] | None = None,
                   score: float | None = None, flagged: bool | None = None) -> None:
        """Queue a record whose fields the caller made (JSON text for ``inputs`` and ``outputs``):
        the answers of the inference protocol and of job submissions, which are not pydantic answers."""
        if not self._full():
            self._put(prediction_id, request_id, endpoint, model, version, latency_seconds, inputs, outputs,
                      predicted, score, flagged)

    def _put(self, prediction_id: str, request_id: str, endpoint: str, model: str, version: str,
             latency_seconds: float, inputs: str, outputs: str, predicted: list[Any] | None,
             score: float | None, flagged: bool | None) -> None:
        """Queue one row (the caller has checked that the queue has room)."""
        self._pending[prediction_id] = None
        self._queue.append((prediction_id, request_id, time.time(), endpoint, model, version,
                            latency_seconds * 1000, inputs, outputs, None if predicted is None else _json(predicted),
                            score, flagged))
        self._ensure_writer()

    def _full(self) -> bool:
        """Whether the queue is full (the record is dropped, and counted)."""
        if len(self._queue) < self.queue_size:
            return False
        metrics().prediction_log.labels("dropped_queue_full").inc()
        return True

    def picture_inputs(self, raw: bytes) -> str:
        """A request that is a picture (or holds one) as the log keeps it: its digest, and itself
        with ``ZOOSERVE_LOG_IMAGES=on``."""
        return json.dumps(_picture(raw, self.keep_pictures))

    # --- the writer thread -----------------------------------------------------------------------

    def _ensure_writer(self) -> None:
        if self._writer is None:
            with self._start:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_forever, name="prediction-log", daemon=True)
                    self._writer.start()
                    # A worker stopped (a deploy, SIGTERM) writes what it still holds before it exits.
                    atexit.register(self.flush, SHUTDOWN_FLUSH_SECONDS)

    def _write_forever(self) -> None:
        next_retention = 0.0
        while True:
            if len(self._queue) < BATCH_ROWS:  # few records: wait for more, a few commits a second at most
                if self._wanted.wait(FLUSH_SECONDS):
                    self._wanted.clear()
            if not self._queue:
                continue
            batch = [self._queue.popleft() for _ in range(min(BATCH_ROWS, len(self._queue)))]
            ids = [row[0] for row in batch]
            try:
                with self.engine().begin() as connection:
                    # One multi-row INSERT through the driver, the rows as queued (the JSON already
                    # text; the time in seconds, which the database turns into its timestamp):
                    # SQLAlchemy's per-value type processing cost more than the request it logs,
                    # and an executemany hands the GIL back and forth with the event loop at every row.
                    connection.exec_driver_sql(self._insert(len(batch)), tuple(itertools.chain.from_iterable(batch)))
                    if time.monotonic() >= next_retention:
                        self._expire(connection)
                        next_retention = time.monotonic() + RETENTION_CHECK_SECONDS
            except Exception as error:  # pylint: disable=broad-exception-caught  # the writer must outlive any failure
                self._done(ids, "dropped_database")
                if not self._failing:
                    self._failing = True
                    logger.warning("prediction log: %s unreachable, dropping records until it answers (%s)",
                                   self.shown, str(error).splitlines()[0] if str(error) else type(error).__name__)
                self._reset()
                time.sleep(RETRY_SECONDS)
                continue
            if self._failing:
                self._failing = False
                logger.warning("prediction log: writing again")
            self._done(ids, "written")

    def _done(self, ids: list[str], outcome: str) -> None:
        metrics().prediction_log.labels(outcome).inc(len(ids))
        with self._written:
            for prediction_id in ids:
                self._pending.pop(prediction_id, None)
            self._written.notify_all()

    def _expire(self, connection: sa.Connection) -> None:
        sa = _sqlalchemy()
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=self.retention_days)
        old = sa.select(self.table("predictions").c.prediction_id).where(
            self.table("predictions").c.created_at < cutoff)
        connection.execute(self.table("feedback").delete().where(self.table("feedback").c.prediction_id.in_(old)))
        connection.execute(self.table("predictions").delete().where(self.table("predictions").c.created_at < cutoff))

    # --- the database --------------------------------------------------------------------------

    def engine(self) -> sa.Engine:
        """The engine, the schema migrated on first use; the tables as the database has them."""
        with self._connecting:  # the writer and a feedback request may both come first
            if self._engine is None:
                self._engine = self._connect()
            return self._engine

    def _connect(self) -> sa.Engine:
        sa = _sqlalchemy()
        url = sa.engine.make_url(engine_url(self.url))
        timeout = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if url.get_backend_name() == "postgresql" else {}
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args=timeout)
        try:
            if engine.dialect.name == "sqlite":
                Path(engine.url.database or ".").parent.mkdir(parents=True, exist_ok=True)
                sa.event.listen(engine, "connect", _sqlite_for_logging)
            migrate(engine)
            reflected = sa.MetaData()
            reflected.reflect(engine, only=("predictions", "feedback"))
        except database_errors():
            engine.dispose()
            raise
        self._tables = dict(reflected.tables)
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}[engine.dialect.paramstyle]  # SQLite, psycopg
        # The time goes in as seconds since the epoch and the database makes the timestamp, in C:
        # sqlite3's datetime adapter, a Python call per row, took about a fifth of the writer's time.
        # SQLite gets the text SQLAlchemy itself writes there (to the millisecond).
        when = (f"strftime('%Y-%m-%d %H:%M:%f000', {mark}, 'unixepoch')" if engine.dialect.name == "sqlite"
                else f"to_timestamp({mark})")
        row = f"({', '.join(when if column == 'created_at' else mark for column in COLUMNS)})"
        self._insert = functools.lru_cache(maxsize=64)(
            lambda rows: f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES {', '.join([row] * rows)}")
        return engine

    def table(self, name: str) -> sa.Table:
        return self._tables[name]

    def _reset(self) -> None:
        """Drop the connections (a restarted server: new ones, the schema checked again)."""
        with self._connecting:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    # --- reads and feedback (a worker thread of the API worker, not the event loop) -------------

    def feedback(self, prediction_id: str, truth: Any, comment: str | None) -> int:
        """Store the feedback beside its prediction; its id. A prediction still queued is waited for."""
        if prediction_id in self._pending:
            self._wanted.set()
        with self._written:
            if not self._written.wait_for(lambda: prediction_id not in self._pending, WRITTEN_WAIT_SECONDS):
                raise LogUnavailable("the answer is still being written")
        sa = _sqlalchemy()
        with self._database():
            with self.engine().begin() as connection:
                predictions = self.table("predictions")
                known = connection.execute(sa.select(predictions.c.prediction_id).where(
                    predictions.c.prediction_id == prediction_id)).first()
                if known is None:
                    raise UnknownPrediction(prediction_id)
                inserted = connection.execute(self.table("feedback").insert().values(
                    prediction_id=prediction_id, created_at=dt.datetime.now(dt.timezone.utc), truth=truth,
                    comment=comment))
                return int(inserted.inserted_primary_key[0])

    def scored(self, model: str) -> list[tuple[Any, Any]]:
        """(predicted, truth) of every prediction of ``model`` that has feedback (its newest)."""
        sa = _sqlalchemy()
        with self._database():
            with self.engine().connect() as connection:
                predictions, feedback = self.table("predictions"), self.table("feedback")
                rows = connection.execute(
                    sa.select(predictions.c.prediction_id, predictions.c.predicted, feedback.c.truth)
                    .join(feedback, feedback.c.prediction_id == predictions.c.prediction_id)
                    .where(predictions.c.model == model).order_by(feedback.c.feedback_id)).all()
        newest = {prediction_id: (predicted, truth) for prediction_id, predicted, truth in rows}
        return list(newest.values())

    @contextlib.contextmanager
    def _database(self) -> Iterator[None]:
        """A read or a feedback write: an answer retention deleted meanwhile is unknown; a database
        that does not answer is unavailable (logged here; the caller's message names no host)."""
        sa = _sqlalchemy()
        try:
            yield
        except sa.exc.IntegrityError:
            raise UnknownPrediction("deleted by retention") from None
        except database_errors() as error:
            logger.warning("prediction log: %s: %s", self.shown, str(error).splitlines()[0] if str(error) else error)
            if isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)):
                self._reset()
            raise LogUnavailable("its database is not answering") from None

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every record queued so far is written or dropped (tests, and at exit)."""
        waiting = set(self._pending)
        self._wanted.set()
        with self._written:
            self._written.wait_for(lambda: waiting.isdisjoint(self._pending), timeout)


def issue_for(log: PredictionLog | None) -> str | None:
    """A new prediction id from the running service's log; None where it keeps none. The server's
    own id, never the caller's X-Request-ID (a caller could repeat or forge one)."""
    return log.issue() if log is not None and log.enabled else None


def _answer_fields(answer: BaseModel | Response, answer_json: str | None
                   ) -> tuple[str, str, str, Any, float | None, bool | None]:
    """model, version, outputs (JSON), predicted values or labels, OOD score and flag of one answer."""
    if isinstance(answer, Answer):
        model = answer.model
        score, flagged = answer.novelty()
        outputs = answer.logged_outputs(answer.model_dump_json() if answer_json is None else answer_json)
        return model.name, model.version, outputs, answer.predicted(), score, flagged
    # A PNG answer (a generation, an interpolation): its model and seed are in its headers.
    name, _, version = answer.headers.get("x-model", " ").partition(" ")
    seed = answer.headers.get("x-seed")
    return name, version, json.dumps({"seed": int(seed)} if seed else {}), None, None, None
