"""Faults an operator meets: killed workers, a dead supervisor, graphs that cannot load, a full
temporary directory, two servers on one host."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.conftest import start_up_refused

from .conftest import serving
from tests.model_copies import edited_copy


def _wait(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_a_killed_generators_worker_is_503_then_recovers(trained_models, tmp_path):
    with serving(trained_models, tmp_path) as served:
        results: list = []
        call = threading.Thread(target=lambda: results.append(httpx.post(
            f"{served.url}/generate/diffusion", json={"n": 64, "steps": 1000}, timeout=120)))
        call.start()
        time.sleep(1.5)
        served.worker("zooserve-generators").kill()
        call.join()
        assert results[0].status_code == 503 and "Retry-After" in results[0].headers, results[0].text
        with httpx.Client(timeout=30) as client:
            def generates() -> bool:
                return client.post(f"{served.url}/generate/gan", json={"n": 1}).status_code == 200
            assert _wait(generates, 90)
            assert served.house(client) == 200


def test_workers_end_with_their_supervisor(trained_models, tmp_path):
    with serving(trained_models, tmp_path) as served:
        workers = psutil.Process(served.process.pid).children(recursive=True)
        assert len(workers) >= 2  # the API worker and the Generators worker (Classifiers only with batching)
        os.kill(served.process.pid, signal.SIGKILL)
        assert _wait(lambda: not any(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE
                                     for worker in workers), 30)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{served.url}/readyz", timeout=2)


def _unloadable_graph(model_dir: Path, card: dict) -> dict:
    import hashlib

    graph = model_dir / card["graphs"]["model"]["file"]
    graph.write_bytes(b"not an onnx graph")
    card["graphs"]["model"]["sha256"] = hashlib.sha256(graph.read_bytes()).hexdigest()
    return card


@pytest.mark.parametrize("breaks, message", [
    (_unloadable_graph, "ONNX Runtime cannot load"),
    (lambda _dir, card: {key: value for key, value in card.items() if key != "graphs"}, "graphs: Field required"),
], ids=["graph ONNX Runtime cannot load", "card without graphs"])
def test_a_model_that_cannot_load_stops_start_up_with_the_cause(trained_models, tmp_path, breaks, message):
    models = edited_copy(trained_models, tmp_path, "house-price-gbm", breaks)
    log = start_up_refused(models, tmp_path / "serve.log")
    assert message in log and "KeyError" not in log


def test_a_full_temporary_directory_does_not_touch_uploads(trained_models, tmp_path):
    """Uploads are parsed from the body in memory: with the temporary directory full, a 2 MB photo
    is still classified (BentoML's parser wrote every upload to a temporary file: a 500, then a 503)."""
    tiny = Path(tempfile.mkdtemp(prefix="zs-", dir="/tmp"))  # short: BentoML puts its sockets in TMPDIR too
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with serving(trained_models, tmp_path, TMPDIR=str(tiny)) as served:
            filler = tiny / "filler"
            with filler.open("wb") as handle, pytest.raises(OSError):
                handle.write(b"\0" * (4 << 20))
            with httpx.Client(timeout=60) as client:
                response = client.post(f"{served.url}/images/classify", files={"image": ("big.png", _big_png())})
                assert response.status_code == 200, response.text
                assert served.house(client) == 200
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)
        tiny.rmdir()


def _big_png() -> bytes:
    """A photo-sized PNG of noise, over 2 MB (more than the 1 MB an upload kept in memory before)."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (900, 900, 3), dtype=np.uint8)).save(buffer, "PNG")
    assert len(buffer.getvalue()) > 2 << 20
    return buffer.getvalue()


def _zooserve_requests(url: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("zooserve_batch_size_count") and 'model="house-price-gbm"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_servers_on_one_home_keep_their_own_metrics(trained_models, tmp_path):
    """Each `bentoml serve` wiped the home's Prometheus directory: the first server lost its series."""
    home = {"BENTOML_HOME": str(tmp_path / "shared-home")}
    with serving(trained_models, tmp_path, **home) as first, httpx.Client(timeout=30) as client:
        for _ in range(3):
            assert first.house(client) == 200
        assert _zooserve_requests(first.url) == 3
        with serving(trained_models, tmp_path, **home) as second:
            assert second.house(client) == 200
            assert _zooserve_requests(first.url) == 3
            assert _zooserve_requests(second.url) == 1
