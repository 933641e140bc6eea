"""BentoML's own task endpoints (``@bentoml.task``), measured for what generation jobs need.

    python -m bench.task_endpoints      # -> reports/task_endpoints.json

A toy service (``TaskToy`` here) has one task that counts 100 steps of 50 ms into a file. The run
submits it and reads its status while it runs (is there any progress?), cancels it (does the work
stop?), then submits ``FLOOD`` at once (is anything capped?), and restarts the server in the same
BentoML home (does a result survive?). ZooServe's jobs (``serving.inference.jobs``) exist because
of what this finds.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import bentoml
import httpx

from loadtests import server

STEPS, STEP_SECONDS, FLOOD = 100, 0.05, 50
REPO = Path(__file__).resolve().parents[1]


@bentoml.service(workers=1)
class TaskToy:
    @bentoml.task
    def count(self, steps: int, tag: str) -> int:
        progress = Path(os.environ["TOY_PROGRESS"]) / tag
        for step in range(1, steps + 1):
            time.sleep(STEP_SECONDS)
            progress.write_text(str(step))
        return steps


def _serve(port: int, home: Path, progress: Path):
    command = [sys.executable, "-m", "bentoml", "serve", "bench.task_endpoints:TaskToy", "--port", str(port)]
    env = {"BENTOML_HOME": str(home), "TOY_PROGRESS": str(progress), "BENTOML_DO_NOT_TRACK": "True",
           "PYTHONPATH": str(REPO)}
    process = server.start(port, home / "serve.log", env, command=command)
    server.wait_ready(f"http://127.0.0.1:{port}", process, home / "serve.log")
    return process


def measure() -> dict:
    root = Path(tempfile.mkdtemp(prefix="task-endpoints-"))
    home, progress = root / "home", root / "progress"
    home.mkdir()
    progress.mkdir()
    port = server.free_port()
    url = f"http://127.0.0.1:{port}"
    found: dict = {}
    process = _serve(port, home, progress)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            started = time.monotonic()
            task = client.post("/count/submit", json={"steps": STEPS, "tag": "first"}).json()
            found["submit_answer"] = task
            time.sleep(1.0)
            found["status_while_running"] = client.get("/count/status", params={"task_id": task["task_id"]}).json()
            cancel = client.put("/count/cancel", params={"task_id": task["task_id"]})
            found["cancel"] = {"status": cancel.status_code, "body": cancel.text[:200],
                               "steps_done_at_cancel": int((progress / "first").read_text())}
            while time.monotonic() - started < STEPS * STEP_SECONDS + 3:
                time.sleep(0.25)
            found["steps_done_after_cancel"] = int((progress / "first").read_text())
            found["status_after"] = client.get("/count/status", params={"task_id": task["task_id"]}).json()
            answers = [client.post("/count/submit", json={"steps": 1, "tag": f"flood-{i}"}) for i in range(FLOOD)]
            found["flood"] = {"submitted": FLOOD, "statuses": sorted({answer.status_code for answer in answers})}
            found["first_task_id"] = task["task_id"]
    finally:
        server.stop(process)
    process = _serve(port, home, progress)
    try:
        after = httpx.get(f"{url}/count/status", params={"task_id": found["first_task_id"]}, timeout=60)
        found["after_restart_in_the_same_home"] = {"status": after.status_code, "body": after.text[:200]}
    finally:
        server.stop(process)
    return found


def main() -> None:
    found = {"bentoml": bentoml.__version__, **measure()}
    out = REPO / "reports" / "task_endpoints.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(found, indent=2))
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
