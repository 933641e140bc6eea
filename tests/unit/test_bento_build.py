"""`bentoml build` packs the service without torch or scikit-learn, and the Dockerfile it
generates starts from a slim Python image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bento_has_serving_code_and_no_training_stack(tmp_path, trained_models):
    # `bentoml build` imports the service, which verifies the models it would serve.
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "True",
           "ZOOSERVE_MODELS_DIR": str(trained_models)}
    bentoml = Path(sys.executable).with_name("bentoml")
    result = subprocess.run([str(bentoml), "build", ".", "--output", "tag"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (bento,) = [path for path in (tmp_path / "bentos" / "zooserve").iterdir() if path.is_dir()]
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().lower()
    assert "onnxruntime-gpu==1.31.1" in requirements and "bentoml==1.4.40" in requirements
    # The [cuda,cudnn] extras, resolved into the lock: CUDA and cuDNN as pip wheels, one image for
    # GPU and CPU nodes, loaded by onnxruntime.preload_dlls().
    assert "nvidia-cuda-runtime==" in requirements and "nvidia-cudnn-cu13==" in requirements
    for heavy in ("torch", "torchvision", "scikit-learn", "skl2onnx", "onnx=="):
        assert heavy not in requirements, heavy
    sources = {path.relative_to(bento / "src").parts[0] for path in (bento / "src").rglob("*.py")}
    assert sources == {"serving"}  # no training/ or tests/ in the container
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
