"""Real request payloads for the load tests, read once from ``$DATA_DIR``.

California test-split rows, MNIST test digits as PNG in both polarities, and hymenoptera
validation JPEGs: the traffic a deployed ZooServe would see, not synthetic noise.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image

from training.data import HOUSING_FEATURES, california_housing_split, load_image_folder, load_passengers, mnist_arrays

COUNT = 200


@cache
def houses() -> list[dict[str, float]]:
    split = california_housing_split()
    return [dict(zip(HOUSING_FEATURES, map(float, row))) for row in split.x_test[:COUNT]]


@cache
def digit_pngs() -> list[bytes]:
    """Every other digit black-on-white, as phone photos of paper would be."""
    images, _ = mnist_arrays(train=False)
    encoded = []
    for index, image in enumerate(images[:COUNT]):
        buffer = io.BytesIO()
        Image.fromarray(255 - image if index % 2 else image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


@cache
def photos() -> list[bytes]:
    samples = load_image_folder("val").samples
    return [open(path, "rb").read() for path, _ in samples[:: max(1, len(samples) // 20)]]


@cache
def passenger_history() -> list[float]:
    return load_passengers()[1].tolist()


@cache
def oip_house_tensor() -> dict:
    rows = np.array([list(house.values()) for house in houses()[:8]], dtype=np.float32)
    return {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}
