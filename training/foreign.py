"""Pictures a classifier was never meant to see, made offline, to judge its novelty flag:
printed letters, scribbles and noise (and, per classifier, real pictures of the other's kind).

For the digit CNN each goes through the upload preprocessing (``serving.inference.images.to_mnist``) as a
client's picture would. Blank canvases never reach it: the preprocessing refuses them (400 "no
digit found"), so they are not among these.
"""

from __future__ import annotations

import string
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from serving.inference.images import ImageError, to_mnist

# Letters that a person could also read as a digit (O D 0, I l 1, Z 2, S 5, b G 6, T 7, q g 9, B 8) are
# left out: flagging them would be wrong, not right.
LOOK_ALIKES = set("OoIilZzSsbGgqBDT")
LETTERS = [letter for letter in string.ascii_letters if letter not in LOOK_ALIKES]


def _letters(rng: np.random.Generator, count: int) -> Iterable[Image.Image]:
    for _ in range(count):
        canvas = Image.new("L", (64, 64), 255)
        font = ImageFont.load_default(size=int(rng.integers(28, 48)))
        ImageDraw.Draw(canvas).text((8, 4), str(rng.choice(LETTERS)), fill=0, font=font)
        yield canvas


def _scribbles(rng: np.random.Generator, count: int) -> Iterable[Image.Image]:
    for _ in range(count):
        canvas = Image.new("L", (64, 64), 255)
        points = [tuple(map(int, point)) for point in rng.integers(4, 60, size=(int(rng.integers(6, 14)), 2))]
        ImageDraw.Draw(canvas).line(points, fill=0, width=int(rng.integers(2, 5)))
        yield canvas


def _noise(rng: np.random.Generator, count: int) -> Iterable[Image.Image]:
    for _ in range(count):
        yield Image.fromarray(rng.integers(0, 256, size=(28, 28), dtype=np.uint8), mode="L")


def drawings(count: int = 500, seed: int = 0) -> dict[str, list[Image.Image]]:
    """``count`` letters, scribbles and noise pictures each."""
    rng = np.random.default_rng(seed)
    return {"letters": list(_letters(rng, count)), "scribbles": list(_scribbles(rng, count)),
            "noise": list(_noise(rng, count))}


def as_digits(pictures: dict[str, list[Image.Image]]) -> dict[str, np.ndarray]:
    """Per kind, the (N, 1, 28, 28) digit-classifier inputs of the pictures the upload
    preprocessing accepts."""
    return {kind: _prepared(made) for kind, made in pictures.items()}


def _prepared(made: Iterable[Image.Image]) -> np.ndarray:
    inputs = []
    for picture in made:
        try:
            inputs.append(to_mnist(picture))
        except ImageError:  # refused at upload: never classified
            continue
    return np.stack(inputs)
