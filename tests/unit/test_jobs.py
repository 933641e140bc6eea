"""Generation jobs in one process: the queue's states, bounds and cancellation, and the x0 preview
a DDIM step gives without the graph giving it."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.inference.ddim import DDIMScheduler, linear_betas, predicted_x0
from serving.inference.jobs import (CANCELLED, DONE, FAILED, KEPT_PER_SLOT, QUEUED, RUNNING, Job, JobGone, JobQueue,
                                    JobsFull)

META = {"model": {"name": "diffusion", "version": "1", "sha256": "0" * 64}, "family": "diffusion"}


def stepping(steps: int, seconds: float = 0.01):
    """A job's work: ``steps`` steps, stopping between two when asked, a preview of each step."""

    def work(job: Job) -> np.ndarray:
        for done in range(1, steps + 1):
            if job.stop.is_set():
                raise RuntimeError("stopped")
            time.sleep(seconds)
            job.advance(done, lambda: np.full((2, 28, 28), done, np.uint8))
        return np.ones((2, 28, 28), np.uint8)

    return work


def wait_for(job: Job, *states: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while job.state not in states and time.monotonic() < deadline:
        time.sleep(0.005)
    assert job.state in states, job.state


def test_a_job_runs_to_done_with_progress_previews_and_an_estimate():
    queue = JobQueue(max_jobs=4, ttl=60)
    job = queue.submit(stepping(40), 40, "steps", 2, META)
    assert len(job.id) >= 22 and job.state in (QUEUED, RUNNING)  # 128 random bits, URL-safe
    job.ended.wait(10)
    status = queue.status(queue.get(job.id))
    assert status["state"] == DONE and status["progress"] == {"done": 40, "total": 40, "unit": "steps"}
    assert status["preview_at"] == 40 and status["expires_in"] is not None and not status["discarded"]
    assert job.pictures.shape == (2, 28, 28)
    running = queue.submit(stepping(400), 400, "steps", 2, META)
    waiting = queue.submit(stepping(40), 40, "steps", 4, META)  # twice as wide: twice the time a step
    wait_for(running, RUNNING)
    alone = waiting.seconds_left(queue.clock())
    assert alone == pytest.approx(queue.pace["diffusion"] * 4 * 40)  # the first job's pace per step and image
    behind = queue.status(waiting)["seconds_left"]
    assert behind > alone  # and it waits for the running job's 400 steps first
    queue.cancel(running.id)
    waiting.ended.wait(10)


def test_cancel_stops_a_running_job_within_a_step_and_the_next_one_starts_at_once():
    queue = JobQueue(max_jobs=4, ttl=60)
    running = queue.submit(stepping(10_000, seconds=0.005), 10_000, "steps", 2, META)
    waiting = queue.submit(stepping(5), 5, "steps", 2, META)
    wait_for(running, RUNNING)
    assert queue.cancel(running.id).state == CANCELLED and running.error is None  # stopped between two steps
    wait_for(waiting, RUNNING, DONE)  # the next job starts (make jobs times how soon)
    queued = queue.submit(stepping(10_000), 10_000, "steps", 2, META)
    other = queue.submit(stepping(1), 1, "steps", 2, META)
    assert queue.cancel(other.id).state == CANCELLED  # a queued job never runs
    queue.cancel(queued.id)


def test_the_cap_refuses_with_a_retry_and_a_failure_says_why():
    queue = JobQueue(max_jobs=2, ttl=60)
    jobs = [queue.submit(stepping(10_000, seconds=0.005), 10_000, "steps", 2, META) for _ in range(2)]
    with pytest.raises(JobsFull, match="2 generation jobs") as full:
        queue.submit(stepping(1), 1, "steps", 2, META)
    assert 1 <= full.value.retry_after <= 60
    for job in jobs:
        queue.cancel(job.id)

    def broken(_job: Job) -> np.ndarray:
        raise ValueError("the step graph said no")

    failed = queue.submit(broken, 1, "images", 1, META)
    failed.ended.wait(5)
    assert failed.state == FAILED and failed.error == "ValueError: the step graph said no"


def test_results_expire_after_the_ttl_and_finished_ones_are_bounded():
    now = [0.0]
    queue = JobQueue(max_jobs=1, ttl=30, clock=lambda: now[0])
    job = queue.submit(stepping(1, seconds=0), 1, "images", 1, META)
    job.ended.wait(5)
    now[0] = 29.0
    assert queue.get(job.id).state == DONE
    now[0] = 31.0
    with pytest.raises(JobGone, match="expired") as gone:
        queue.get(job.id)
    assert gone.value.expired
    with pytest.raises(JobGone, match="unknown") as unknown:
        queue.get("no-such-job")
    assert not unknown.value.expired
    finished = []
    for _ in range(KEPT_PER_SLOT + 3):
        finished.append(queue.submit(stepping(1, seconds=0), 1, "images", 1, META))
        finished[-1].ended.wait(5)
    kept = [job for job in finished if job.id in queue.jobs]
    assert len(kept) == KEPT_PER_SLOT and kept == finished[-KEPT_PER_SLOT:]  # the oldest went first
    discarded = queue.cancel(finished[-1].id)  # a finished job's result is discarded
    assert discarded.state == DONE and finished[-1].id not in queue.jobs
    assert discarded.status(now[0], queue.ttl)["discarded"] and discarded.status(now[0], queue.ttl)["expires_in"] == 0


def test_every_step_predicts_the_clean_images_from_its_input_and_output():
    scheduler = DDIMScheduler(linear_betas(1000, 1e-4, 0.02))
    scheduler.set_timesteps(50)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    for t in scheduler.timesteps.tolist():
        eps = rng.standard_normal(x.shape).astype(np.float32)
        alpha, alpha_prev = scheduler.alphas(t)
        expected = np.clip((x - np.sqrt(1 - alpha) * eps) / np.sqrt(alpha), -1, 1)  # the scheduler's own x0
        x_prev = scheduler.step(eps, t, x)
        assert np.allclose(predicted_x0(x, x_prev, alpha, alpha_prev), expected, atol=2e-3), t
        x = x_prev



def test_a_quiet_stream_sends_heartbeats_and_ends_with_the_final_state(monkeypatch):
    from serving.protocol import jobs as routes

    def state(done: int, name: str = RUNNING) -> dict:
        return {"id": "j", "state": name, "progress": {"done": done, "total": 100, "unit": "steps"},
                "preview_at": None}

    later = iter([state(5), state(5), state(12), state(100, DONE)])

    async def next_state(_family: str, _job_id: str) -> dict:
        return next(later)

    monkeypatch.setattr(routes, "_state", next_state)
    monkeypatch.setattr(routes, "POLL_SECONDS", 0)
    monkeypatch.setattr(routes, "HEARTBEAT_SECONDS", 0)

    async def read() -> list[bytes]:
        return [chunk async for chunk in routes._stream(state(0), "diffusion", "j", every=10, preview=False)]

    with ThreadPoolExecutor(1) as apart:  # a loop of its own: the browser tests leave one running in this thread
        chunks = apart.submit(asyncio.run, read()).result()
    assert chunks[0].startswith(b"event: progress") and b'"done": 0' in chunks[0]
    assert b": keep-alive\n\n" in chunks  # 5 steps is under ``every``: nothing to say but that it lives
    assert any(chunk.startswith(b"event: progress") and b'"done": 12' in chunk for chunk in chunks)
    assert chunks[-1].startswith(b"event: done\n")
