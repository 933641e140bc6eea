"""``make jobs``: generation jobs as their users meet them, measured against a server of its own.

1. **Disconnect and fetch later.** A client submits a 64-digit diffusion job at the model's most
   steps (1,000 for the served model) and closes its connection at the 202. Another client
   follows the job, waits ``--later`` seconds (30) after it finished, fetches the result and
   compares it with the synchronous endpoint's bytes for the same seed.
2. **Cancel.** Two long jobs are queued; once the first runs, a ``DELETE`` cancels it. Measured:
   the time until the ``DELETE`` answers with the job cancelled (its sampler stopped, the
   generation thread free) and until the second job is running.
3. **A flood.** ``--flood`` (200) submissions at once, a mix of the three families. Counted:
   202s, 429s (beyond ``ZOOSERVE_MAX_JOBS``) and anything else; every accepted job is followed
   until it finishes (or cancelled after ``--patience`` seconds), and every process's RSS is
   sampled throughout.

Written to ``reports/jobs/``: ``jobs.json`` and ``jobs.md``. Exit code 1 when the bytes differ, a
cancel took over a second, an answer was a 5xx, or an accepted job neither finished nor was
cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path

import httpx

from loadtests import server
from loadtests.run import REPO
from loadtests.soak import growth, sample_rss

FINISHED = ("done", "failed", "cancelled")
FLOOD_BODIES = {"diffusion": {"n": 16, "steps": 50}, "vae": {"n": 64}, "gan": {"n": 64}}


def follow(client: httpx.Client, location: str, until: tuple[str, ...] = FINISHED, every: float = 0.05) -> dict:
    while True:
        state = client.get(location).json()
        if state["state"] in until:
            return state
        time.sleep(every)


def disconnect_and_fetch_later(url: str, steps: int, later: float) -> dict:
    body = {"n": 64, "seed": 2026, "steps": steps}
    submitted_at = time.monotonic()
    with httpx.Client(base_url=url, timeout=600) as submitter:  # closed once it has the 202
        submitted = submitter.post("/generate/diffusion/jobs", json=body)
    location = submitted.headers["location"]
    with httpx.Client(base_url=url, timeout=600) as client:
        state = follow(client, location, every=0.5)
        job_seconds = time.monotonic() - submitted_at
        time.sleep(later)
        result = client.get(f"{location}/result")
        started = time.monotonic()
        direct = client.post("/generate/diffusion", json=body)
        direct_seconds = time.monotonic() - started
    return {"steps": steps, "status": submitted.status_code, "state": state["state"], "waited_s": later,
            "job_s": round(job_seconds, 1), "result_status": result.status_code, "result_bytes": len(result.content),
            "same_bytes": result.status_code == 200 and result.content == direct.content,
            "synchronous_s": round(direct_seconds, 1)}


def cancel(url: str, steps: int) -> dict:
    body = {"n": 64, "seed": 1, "steps": steps}
    with httpx.Client(base_url=url, timeout=60) as client:
        first, second = (client.post("/generate/diffusion/jobs", json=body).headers["location"] for _ in range(2))
        follow(client, first, until=("running",), every=0.01)
        time.sleep(1.0)  # well into its steps
        asked = time.monotonic()
        cancelled = client.delete(first).json()
        answered = time.monotonic() - asked
        state = follow(client, second, until=("running", *FINISHED), every=0.005)
        next_running = time.monotonic() - asked
        client.delete(second)
    return {"cancelled_state": cancelled["state"], "steps_done_at_cancel": cancelled["progress"]["done"],
            "delete_answered_s": round(answered, 3), "next_job": state["state"],
            "next_running_after_s": round(next_running, 3)}


async def _submit_all(url: str, count: int) -> list[httpx.Response]:
    families = list(FLOOD_BODIES)
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(client.post(f"/generate/{families[i % 3]}/jobs",
                                                  json={**FLOOD_BODIES[families[i % 3]], "seed": i})
                                      for i in range(count)))


def flood(url: str, root_pid: int, count: int, patience: float) -> dict:
    rows: list[dict] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(root_pid, 0.5, stop, rows))
    sampler.start()
    time.sleep(1.0)
    answers = asyncio.run(_submit_all(url, count))
    statuses = [answer.status_code for answer in answers]
    accepted = [answer.headers["location"] for answer in answers if answer.status_code == 202]
    ends: dict[str, int] = {}
    deadline = time.monotonic() + patience
    with httpx.Client(base_url=url, timeout=60) as client:
        for location in accepted:
            state = client.get(location).json()
            while state["state"] not in FINISHED and time.monotonic() < deadline:
                time.sleep(0.1)
                state = client.get(location).json()
            if state["state"] not in FINISHED:
                state = client.delete(location).json()
            ends[state["state"]] = ends.get(state["state"], 0) + 1
            statuses.append(client.get(f"{location}/result").status_code)
    time.sleep(1.0)
    stop.set()
    sampler.join()
    return {"submitted": count, "accepted": len(accepted), "refused_429": statuses[:count].count(429),
            "other": sorted({status for status in statuses[:count] if status not in (202, 429)}),
            "server_errors": sum(status >= 500 for status in statuses), "ends": ends,
            "retry_after": sorted({answer.headers.get("retry-after") for answer in answers
                                   if answer.status_code == 429}), "rss": growth(rows, warm_up=0)}


def markdown(result: dict) -> str:
    late, cancelled, flooded = result["disconnect"], result["cancel"], result["flood"]
    lines = [
        "# Generation jobs",
        "",
        f"**Disconnect and fetch later.** A 64-digit, {late['steps']}-step diffusion job, its submitter gone at "
        f"the 202: {late['state']}; fetched {late['waited_s']:.0f} s after it finished: {late['result_status']}, "
        f"{late['result_bytes']} bytes, the synchronous endpoint's bytes for the seed: **{late['same_bytes']}** "
        f"(the job took {late['job_s']} s from submission to done, the synchronous call {late['synchronous_s']} s).",
        "",
        f"**Cancel.** The `DELETE` answered `{cancelled['cancelled_state']}` in "
        f"**{cancelled['delete_answered_s'] * 1000:.0f} ms** (after {cancelled['steps_done_at_cancel']} steps); "
        f"the next job was `{cancelled['next_job']}` {cancelled['next_running_after_s'] * 1000:.0f} ms after the "
        f"`DELETE` was sent.",
        "",
        f"**Flood.** {flooded['submitted']} submissions at once: {flooded['accepted']} accepted, "
        f"{flooded['refused_429']} refused with 429 (Retry-After {', '.join(flooded['retry_after'])} s), other "
        f"statuses {flooded['other'] or 'none'}, 5xx: **{flooded['server_errors']}**; accepted jobs ended "
        f"{flooded['ends']}.",
        "",
        "| process | start MB | peak MB | end MB |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {row['process']} | {row['start MB']} | {row['peak MB']} | {row['end MB']} |" for row in flooded["rss"]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--steps", type=int, default=1000, help="the disconnect job's DDIM steps")
    parser.add_argument("--later", type=float, default=30.0, help="seconds between a job's end and its fetch")
    parser.add_argument("--flood", type=int, default=200)
    parser.add_argument("--patience", type=float, default=300.0, help="then the flood's unfinished jobs are cancelled")
    parser.add_argument("--port", type=int, default=3400)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "jobs")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    url, log = f"http://127.0.0.1:{args.port}", args.out / "server.log"
    process = server.start(args.port, log, {"ZOOSERVE_MODELS_DIR": str(args.models_dir)})
    try:
        server.wait_ready(url, process, log)
        result = {"disconnect": disconnect_and_fetch_later(url, args.steps, args.later),
                  "cancel": cancel(url, args.steps),
                  "flood": flood(url, process.pid, args.flood, args.patience)}
    finally:
        server.stop(process)
    (args.out / "jobs.json").write_text(json.dumps(result, indent=2))
    (args.out / "jobs.md").write_text(markdown(result))
    print(markdown(result))
    flooded = result["flood"]
    ok = (result["disconnect"]["same_bytes"] and result["cancel"]["delete_answered_s"] < 1.0
          and result["cancel"]["cancelled_state"] == "cancelled" and flooded["server_errors"] == 0
          and sum(flooded["ends"].values()) == flooded["accepted"] and set(flooded["ends"]) <= set(FINISHED))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
