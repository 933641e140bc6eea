"""The data layer reads the real datasets and fails with one clear message when they are missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serving.repository.layout import newest
from training import data
from training.catalog import BEYOND_FIRST_RUN, recipes


def test_california_housing_matches_the_published_dataset():
    x, y = data.load_california_housing()
    assert x.shape == (20640, 8) and y.shape == (20640,)
    np.testing.assert_allclose(x[0], [8.3252, 41, 6.984127, 1.02381, 322, 2.555556, 37.88, -122.23], rtol=1e-5)
    assert y[0] == pytest.approx(4.526)


def test_housing_split_is_the_fixed_80_20_split():
    split = data.california_housing_split()
    assert (len(split.y_train), len(split.y_test)) == (16512, 4128)
    again = data.california_housing_split()
    np.testing.assert_array_equal(split.x_test, again.x_test)


def test_mnist_arrays():
    images, labels = data.mnist_arrays(train=False)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    train_images, train_labels = data.mnist_arrays(train=True)
    assert len(train_images) == 60000 and train_labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_image_folder_reads_hymenoptera():
    train, val = data.load_image_folder("train"), data.load_image_folder("val")
    assert train.classes == ["ants", "bees"]
    assert (len(train), len(val)) == (244, 153)


def test_passengers_series():
    months, values = data.load_passengers()
    assert len(values) == 144 and months[0] == "1949-01" and months[-1] == "1960-12"
    assert values.sum() == 40363


@pytest.mark.parametrize("load", [
    data.load_california_housing,
    lambda: data.load_mnist(train=True),
    lambda: data.load_image_folder("train"),
    data.load_passengers,
])
def test_missing_data_names_the_path_and_the_variable(load, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATA_DOWNLOAD", "0")
    with pytest.raises(data.DataNotFoundError) as caught:
        load()
    message = str(caught.value)
    assert str(tmp_path) in message and "DATA_DIR" in message


def test_cli_reports_missing_data_without_a_traceback(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "DATA_DOWNLOAD": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "training", "house-price-gbm", "--profile", "quick",
                             "--models-dir", str(tmp_path / "models")], capture_output=True, text=True, env=env,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 2
    assert "DATA_DIR" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models" / "house-price-gbm").exists()


def test_first_run_skips_trained_models_and_gives_an_estimate_before_each_training(trained_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(trained_models, models, ignore=shutil.ignore_patterns("passengers"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", "training", "all", "--profile", "quick", "--missing-only",
                             "--served-only", "--models-dir", str(models)], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=300)  # as training.first_run runs it
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # All but passengers, and not the course's extra models, which a first run does not train at all.
    assert sum(line.endswith(", skipped") for line in lines) == len(recipes()) - 1 - len(BEYOND_FIRST_RUN)
    assert not any(name in result.stdout for name in BEYOND_FIRST_RUN)
    # The estimate is the reference's, scaled by the probe of this machine that the run printed first.
    probe = next(line for line in lines if line.startswith("this machine against the reference one"))
    assert re.search(r"cnn \d+\.\d\dx as long, unet \d+\.\d\dx as long, numpy \d+\.\d\dx as long$", probe)
    assert any(re.fullmatch(r"\[1/1\] passengers: training \(quick profile\), about \d+ s on this machine", line)
               for line in lines)
    wrote = next(line for line in lines if line.startswith("passengers: wrote"))
    assert wrote.startswith(f"passengers: wrote {models / 'passengers' / '1'} in ") and "test_mape" in wrote
    assert re.search(r" in \d+ s \(\d+\.\d\dx the estimate\): ", wrote)
    assert (newest(models / "passengers") / "card.json").is_file()
