"""The prediction log's database stopped under load: every request is still answered, the records
that could not be written are counted as dropped, and logging resumes once the database is back."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import HOUSE, serving


def _counted(url: str, outcome: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("zooserve_prediction_log_records_total{") and f'outcome="{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_stopped_database_fails_no_request_and_logging_resumes(trained_models, tmp_path, postgres):
    url = postgres.create_database("outage")
    with serving(trained_models, tmp_path, ZOOSERVE_PREDICTION_LOG=url) as served:
        statuses: list[int] = []
        done = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=30) as client:
                while not done.is_set():
                    statuses.append(served.house(client))

        with ThreadPoolExecutor(8) as pool:
            for _ in range(8):
                pool.submit(load)
            time.sleep(3)
            written_before = _counted(served.url, "written")
            postgres.stop()  # in the middle of the load
            time.sleep(4)
            postgres.start()
            time.sleep(3)
            done.set()
        assert statuses and set(statuses) == {200}, {status: statuses.count(status) for status in set(statuses)}
        assert written_before > 0 and _counted(served.url, "dropped_database") > 0
        # Back up: a new answer is written again (feedback finds it in the database).
        with httpx.Client(timeout=30) as client:
            answer = client.post(f"{served.url}/house-price/predict", json={"houses": [HOUSE]}).json()
            feedback = client.post(f"{served.url}/feedback", json={"prediction_id": answer["prediction_id"],
                                                                   "truth": 4.0})
        assert feedback.status_code == 201, feedback.text
        assert "prediction log: writing again" in served.log.read_text()
