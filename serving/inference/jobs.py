"""Generation jobs: sampling runs that outlive the request that asked for them.

A job is submitted, runs on one thread of the generation worker after the jobs ahead of it, and
keeps its pictures until ``ttl`` seconds after it finished; its state, progress (DDIM steps, or
images for the latent models), a time-left estimate and a preview of the digits emerging can be
read meanwhile by anyone holding its id. The queue lives in the one generation worker process, so
every API worker sees every job. Bounds: at most ``max_jobs`` queued or running (``JobsFull``
beyond), at most ``KEPT_PER_SLOT`` finished results per slot (the oldest go first), and an id is
128 random bits.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
KEPT_PER_SLOT = 8  # finished results kept per ``max_jobs``: bounds memory under a flood of short jobs
FORGOTTEN = 10_000  # ids of expired jobs remembered (410, not 404), newest first
PREVIEWS = 20  # previews a job makes over its run
UNKNOWN_WAIT = 5.0  # seconds a full queue asks a client to wait when the running job's pace is not known yet


class JobsFull(Exception):
    """``max_jobs`` are queued or running; ``retry_after``: when the running one should be done."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"{limit} generation jobs are queued or running (ZOOSERVE_MAX_JOBS); retry later")
        self.retry_after = retry_after


class JobGone(LookupError):
    """An id that names no job: ``expired`` when it did once (its result is gone), else unknown."""

    def __init__(self, job_id: str, expired: bool) -> None:
        super().__init__(f"job {job_id} {'expired: its result is no longer kept' if expired else 'is unknown'}")
        self.expired = expired


@dataclass
class Job:
    """One job; ``work`` reports each unit done through ``advance`` and returns the pictures."""

    id: str
    work: Callable[["Job"], np.ndarray]
    total: int  # units of work: DDIM steps, or images
    unit: str
    width: int  # images each unit works on (a DDIM step runs on all n; a latent model's unit is one)
    meta: dict[str, Any]  # what the submitter wants back with the state (model, seed, format)
    pace: float | None  # seconds per unit and image, before it has run a unit (the last job's)
    state: str = QUEUED
    done: int = 0
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    pictures: np.ndarray | None = None
    preview: np.ndarray | None = None
    preview_at: int = 0  # the unit the preview shows
    discarded: bool = False  # its result was deleted
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def advance(self, done: int, estimate: Callable[[], np.ndarray] | None = None) -> None:
        """``done`` units of ``total`` are done; ``estimate`` gives the current picture of the
        result, called only for the few steps a preview is made at."""
        self.done = done
        every = max(1, self.total // PREVIEWS)
        if estimate is not None and (done % every == 0 or done == self.total):
            self.preview, self.preview_at = estimate(), done

    def seconds_left(self, now: float) -> float | None:
        """Its own time to finish, at the pace it has had (or, before its first unit, the last
        job's of its model, scaled to its size); None when neither is known."""
        if self.state in FINISHED:
            return 0.0
        if self.started is not None and self.done:
            return (now - self.started) / self.done * (self.total - self.done)
        return None if self.pace is None else self.pace * self.width * (self.total - self.done)

    def status(self, now: float, ttl: float, ahead: float | None = 0.0) -> dict[str, Any]:
        """Its state as clients read it; ``ahead``: the time the jobs before it still need."""
        own = self.seconds_left(now)
        left = None if own is None or ahead is None else own + ahead
        expires = None if self.finished is None else 0.0 if self.discarded else max(0.0, self.finished + ttl - now)
        return {"id": self.id, "state": self.state,
                "progress": {"done": self.done, "total": self.total, "unit": self.unit},
                "seconds_left": None if left is None else round(left, 2),
                "error": self.error, "preview_at": self.preview_at if self.preview is not None else None,
                "expires_in": None if expires is None else round(expires, 1), "discarded": self.discarded,
                **self.meta}


class JobQueue:
    """The jobs of one worker process, run one at a time on a thread of their own."""

    def __init__(self, max_jobs: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_jobs, self.ttl, self.clock = max_jobs, ttl, clock
        self.jobs: dict[str, Job] = {}
        self.waiting: deque[Job] = deque()
        self.expired: OrderedDict[str, None] = OrderedDict()
        self.pace: dict[str, float] = {}  # meta["model"]["name"] -> seconds per unit and image of its last job
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._runner = threading.Thread(target=self._run_jobs, name="zooserve-generation-jobs", daemon=True)
        self._runner.start()

    def submit(self, work: Callable[[Job], np.ndarray], total: int, unit: str, width: int,
               meta: dict[str, Any]) -> Job:
        with self._lock:
            self._forget_expired()
            active = [job for job in self.jobs.values() if job.state in (QUEUED, RUNNING)]
            if len(active) >= self.max_jobs:
                # A place frees when the running job ends (unknown yet: a few seconds).
                running = [job.seconds_left(self.clock()) for job in active if job.state == RUNNING]
                soonest = running[0] if running and running[0] is not None else UNKNOWN_WAIT
                raise JobsFull(self.max_jobs, max(1, min(60, round(soonest))))
            job = Job(secrets.token_urlsafe(16), work, total, unit, width, meta, self.pace.get(meta["model"]["name"]),
                      created=self.clock())
            self.jobs[job.id] = job
            self.waiting.append(job)
            self._wake.notify()
            return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            self._forget_expired()
            job = self.jobs.get(job_id)
            if job is None:
                raise JobGone(job_id, job_id in self.expired)
            return job

    def status(self, job: Job) -> dict[str, Any]:
        """The job's state, its time left counting the jobs before it in the queue."""
        now = self.clock()
        with self._lock:
            ahead: list[Job] = []
            if job.state == QUEUED and job in self.waiting:
                waiting = list(self.waiting)
                ahead = [other for other in self.jobs.values() if other.state == RUNNING] + waiting[:waiting.index(job)]
            lefts = [other.seconds_left(now) for other in ahead]
        return job.status(now, self.ttl, None if None in lefts else sum(lefts))

    def cancel(self, job_id: str, wait: float = 2.0) -> Job:
        """Stop a queued or running job (a running sampler stops at its next step; this waits up to
        ``wait`` seconds for it), or discard a finished one's result."""
        job = self.get(job_id)
        if job.state in FINISHED:
            with self._lock:
                job.discarded = True
                self._expire(job)
            return job
        job.stop.set()
        with self._lock:
            if job.state == QUEUED:
                self.waiting.remove(job)
                self._finish(job, CANCELLED)
        job.ended.wait(wait)
        return job

    def _run_jobs(self) -> None:
        while True:
            with self._lock:
                while not self.waiting:
                    self._wake.wait()
                job = self.waiting.popleft()
                job.state, job.started = RUNNING, self.clock()
            try:
                pictures = job.work(job)
            except Exception as error:  # the sampler's own errors and ONNX Runtime's: the job says why
                with self._lock:
                    self._finish(job, CANCELLED if job.stop.is_set() else FAILED,
                                 error=None if job.stop.is_set() else f"{type(error).__name__}: {error}")
                continue
            with self._lock:
                job.pictures, job.done = pictures, job.total
                self.pace[job.meta["model"]["name"]] = (self.clock() - job.started) / max(1, job.total * job.width)
                self._finish(job, DONE)

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished = state, error, self.clock()
        job.work = _spent  # the closure holds the request's sessions and arrays
        job.ended.set()
        finished = [other for other in self.jobs.values() if other.state in FINISHED]
        for oldest in finished[:max(0, len(finished) - KEPT_PER_SLOT * self.max_jobs)]:
            self._expire(oldest)

    def _forget_expired(self) -> None:
        now = self.clock()
        for job in [job for job in self.jobs.values() if job.finished is not None and job.finished + self.ttl <= now]:
            self._expire(job)

    def _expire(self, job: Job) -> None:
        self.jobs.pop(job.id, None)
        self.expired[job.id] = None
        while len(self.expired) > FORGOTTEN:
            self.expired.popitem(last=False)


def _spent(job: Job) -> np.ndarray:
    raise RuntimeError(f"job {job.id} has already run")
