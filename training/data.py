"""Real loaders for every dataset ZooServe trains on, read from ``$DATA_DIR``.

Each loader reads the layout the standard library expects (scikit-learn's cache, torchvision's
MNIST folder, an ImageFolder tree, a CSV). When the files are missing it tries the official
download (unless ``DATA_DOWNLOAD=0``) and, failing that, raises one ``DataNotFoundError`` that
says what is missing, where it looked and how to provide it.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HOUSING_FEATURES = (
    "MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude",
)
HOUSING_TEST_SIZE = 0.2
HOUSING_SPLIT_SEED = 42
PASSENGERS_URL = "https://raw.githubusercontent.com/jbrownlee/Datasets/master/airline-passengers.csv"
HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"


class DataNotFoundError(RuntimeError):
    """A dataset is neither on disk nor downloadable; the message tells the user how to fix it."""


def data_dir() -> Path:
    """The data root: ``$DATA_DIR``, default ``data/`` under the working directory."""
    return Path(os.environ.get("DATA_DIR", "data"))


def downloads_allowed() -> bool:
    return os.environ.get("DATA_DOWNLOAD", "1").lower() not in ("0", "false", "no")


def _missing(what: str, where: Path, error: Exception | None = None) -> DataNotFoundError:
    reason = f" (download failed: {error})" if error else " (downloads disabled by DATA_DOWNLOAD=0)"
    return DataNotFoundError(
        f"{what} not found at {where.resolve()}{reason}. Put the dataset there, or point the "
        f"DATA_DIR environment variable at a folder that has it (e.g. DATA_DIR=../shared/data)."
    )


@dataclass(frozen=True)
class HousingSplit:
    """The fixed California-housing split; the test rows are never used for fitting or tuning."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    features: tuple[str, ...] = HOUSING_FEATURES


def load_california_housing() -> tuple[np.ndarray, np.ndarray]:
    """Features (20640, 8) and median house value in $100k, from scikit-learn's cache."""
    from sklearn.datasets import fetch_california_housing

    home = data_dir() / "scikit_learn_data"
    try:
        bunch = fetch_california_housing(data_home=str(home), download_if_missing=downloads_allowed())
    except OSError as error:  # scikit-learn raises OSError for both "missing" and "download failed"
        raise _missing("California housing (cal_housing_py3.pkz)", home,
                       error if downloads_allowed() else None) from None
    return bunch.data, bunch.target


def california_housing_split() -> HousingSplit:
    from sklearn.model_selection import train_test_split

    x, y = load_california_housing()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=HOUSING_TEST_SIZE, random_state=HOUSING_SPLIT_SEED
    )
    return HousingSplit(x_train, x_test, y_train, y_test)


def load_mnist(train: bool, transform=None):
    """torchvision's MNIST dataset (60,000 train or 10,000 test images) under ``$DATA_DIR/MNIST``."""
    from torchvision import datasets

    root = data_dir()
    try:
        return datasets.MNIST(root=str(root), train=train, transform=transform,
                              download=downloads_allowed())
    except RuntimeError as error:  # torchvision: "Dataset not found" when download=False
        raise _missing("MNIST", root / "MNIST" / "raw", None) from error
    except OSError as error:
        raise _missing("MNIST", root / "MNIST" / "raw", error) from None


def mnist_arrays(train: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST as uint8 images (N, 28, 28) and int64 labels, without per-item Python overhead."""
    dataset = load_mnist(train)
    return dataset.data.numpy(), dataset.targets.numpy().astype(np.int64)


def image_folder_root(root: str | os.PathLike | None = None) -> Path:
    """An ImageFolder tree with ``train/`` and ``val/``; default ``$DATA_DIR/hymenoptera_data``."""
    path = Path(root) if root else data_dir() / "hymenoptera_data"
    if (path / "train").is_dir():
        return path
    if root is None and downloads_allowed():
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(HYMENOPTERA_URL, download_root=str(path.parent))
        except OSError as error:
            raise _missing("ImageFolder dataset (train/ and val/ class folders)", path, error) from None
        return path
    raise _missing("ImageFolder dataset (train/ and val/ class folders)", path)


def load_image_folder(split: str, transform=None, root: str | os.PathLike | None = None):
    """torchvision ``ImageFolder`` for ``split`` ('train' or 'val'); classes are the sub-folders."""
    from torchvision import datasets

    return datasets.ImageFolder(str(image_folder_root(root) / split), transform=transform)


def load_passengers() -> tuple[list[str], np.ndarray]:
    """Months ('1949-01', ...) and monthly airline passengers (thousands), 144 values."""
    path = data_dir() / "airline-passengers.csv"
    if not path.exists():
        if not downloads_allowed():
            raise _missing("Airline passengers CSV", path)
        import urllib.request

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            urllib.request.urlretrieve(PASSENGERS_URL, path)
        except OSError as error:
            raise _missing("Airline passengers CSV", path, error) from None
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["Month"] for row in rows], np.array([float(row["Passengers"]) for row in rows])
