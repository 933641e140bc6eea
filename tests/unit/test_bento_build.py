"""The Bento as shipped: `bentoml build` packs the service without torch or scikit-learn, and the
built Bento, served from the Bento store as a container would serve it, answers every family."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from loadtests.server import free_port, stop, wait_ready

REPO = Path(__file__).resolve().parents[2]
BENTOML = Path(sys.executable).with_name("bentoml")
HOUSE = {"MedInc": 8.3252, "HouseAge": 41.0, "AveRooms": 6.984, "AveBedrms": 1.024, "Population": 322.0,
         "AveOccup": 2.556, "Latitude": 37.88, "Longitude": -122.23}


def _build_context(trained_models: Path, directory: Path) -> Path:
    """What `make build` packs from the repository: serving/, the labs' plots, bentofile.yaml and models/."""
    context = directory / "context"
    shutil.copytree(REPO / "serving", context / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "docs" / "labs", context / "docs" / "labs")
    shutil.copy(REPO / "bentofile.yaml", context)
    shutil.copytree(trained_models, context / "models")
    return context


def test_the_built_bento_serves_every_family(tmp_path, trained_models):
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZOOSERVE_")}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True")
    built = subprocess.run([str(BENTOML), "build", str(_build_context(trained_models, tmp_path)), "--output", "tag"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    (bento,) = [path for path in (home / "bentos" / "zooserve").iterdir() if path.is_dir()]
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().lower()
    assert "onnxruntime-gpu==1.31.1" in requirements and "bentoml==1.4.40" in requirements
    # The [cuda,cudnn] extras, resolved into the lock: CUDA and cuDNN as pip wheels, one image for
    # GPU and CPU nodes, loaded by onnxruntime.preload_dlls().
    assert "nvidia-cuda-runtime==" in requirements and "nvidia-cudnn-cu13==" in requirements
    for heavy in ("torch", "torchvision", "scikit-learn", "skl2onnx", "onnx=="):
        assert heavy not in requirements, heavy
    sources = {path.relative_to(bento / "src").parts[0] for path in (bento / "src").rglob("*.py")}
    assert sources == {"serving"}  # no training/ or tests/ in the container
    assert "FROM python:3.11-slim" in (bento / "env" / "docker" / "Dockerfile").read_text()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "bento.log"
    # From the Bento store, in a neutral directory: nothing of the repository's tree is used.
    process = subprocess.Popen([str(BENTOML), "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
                               cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_ready(url, process, log, timeout=180)
        with httpx.Client(base_url=url, timeout=60) as client:
            assert "<html" in client.get("/").text.lower()
            assert client.get("/labs/ex4.png").headers["content-type"] == "image/png"  # the Course panel's
            assert client.get("/v2").json()["name"] == "zooserve"
            answers = {
                "house": client.post("/house-price/predict", json={"houses": [HOUSE]}),
                "forecast": client.post("/passengers/forecast", json={"horizon": 3}),
                "digit": client.post("/digits/classify", json={"pixels": [[0.0] * 28] * 10 + [[255.0] * 28] * 8
                                                               + [[0.0] * 28] * 10}),
                "photo": client.post("/images/classify", files={"image": ("bee.png", _photo(), "image/png")}),
                "v2": client.get("/v2/models/mnist-cnn"),
            }
            answers |= {model: client.post(f"/generate/{model}", json={"n": 2, "seed": 1})
                        for model in ("vae", "gan", "diffusion")}
            answers["gan, a digit"] = client.post("/generate/gan", json={"n": 2, "seed": 1, "digit": 3})
        assert {name: response.status_code for name, response in answers.items()} == dict.fromkeys(answers, 200), \
            {name: response.text[:200] for name, response in answers.items()}
        assert "[ERROR]" not in log.read_text()
    finally:
        stop(process)


def _photo() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 150, 40)).save(buffer, format="PNG")
    return buffer.getvalue()
