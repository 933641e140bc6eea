"""Pictures of digits as people send them, generated reproducibly, for ``bench.robustness``.

Each family is a function ``(rng, digit) -> encoded picture bytes`` that draws one digit the way
a user's picture of that kind looks: printed in several fonts, in ink on coloured paper, in thick
marker, under sensor noise and heavy JPEG, under uneven light, and real handwriting (MNIST test
digits, which no model trains on) as a phone photo of paper. Seeds make every family the same
on every machine that has the same fonts (DejaVu and Liberation on Debian; Pillow's own font
otherwise).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
Picture = Callable[[np.random.Generator, int], bytes]


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """Every regular and bold face the machine has (no condensed or 'extra light': too unlike pens)."""
    found = sorted(str(path) for folder in FONT_DIRS if folder.is_dir() for path in folder.glob("*.ttf")
                   if "Condensed" not in path.name and "ExtraLight" not in path.name)
    return tuple(found)


def _font(rng: np.random.Generator, size: int, regular_only: bool = False) -> ImageFont.FreeTypeFont:
    files = [name for name in font_files() if not (regular_only and "Bold" in name)]
    if not files:
        return ImageFont.load_default(size)
    return ImageFont.truetype(files[int(rng.integers(len(files)))], size)


def _printed(rng: np.random.Generator, digit: int, ink: int | tuple[int, ...], paper: int | tuple[int, ...],
             stroke_fraction: float = 0.0, mode: str = "L", regular_only: bool = False) -> Image.Image:
    """One digit drawn at a random size, place and slant on a canvas of 64-160 pixels."""
    side = int(rng.integers(64, 161))
    size = int(side * rng.uniform(0.45, 0.7))
    font = _font(rng, size, regular_only)
    glyph = Image.new(mode, (side, side), paper)
    draw = ImageDraw.Draw(glyph)
    _, glyph_top, _, glyph_bottom = draw.textbbox((0, 0), str(digit), font=font)
    glyph_height = glyph_bottom - glyph_top
    stroke = round(stroke_fraction * glyph_height)  # Pillow's outline, added on each side of every stroke
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font, stroke_width=stroke)
    x = (side - (right - left)) / 2 - left + rng.uniform(-0.1, 0.1) * side
    y = (side - (bottom - top)) / 2 - top + rng.uniform(-0.1, 0.1) * side
    draw.text((x, y), str(digit), fill=ink, font=font, stroke_width=stroke, stroke_fill=ink)
    return glyph.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BILINEAR, fillcolor=paper)


def _encode(image: Image.Image, kind: str = "PNG", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **({"quality": quality} if kind == "JPEG" else {}))
    return buffer.getvalue()


def _gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def _image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode="L")


def _ramp(side: int, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Light falling off across the page in a random direction, ``low`` to ``high`` gray."""
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:side, 0:side] / max(side - 1, 1)
    along = np.cos(angle) * xx + np.sin(angle) * yy
    along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    return low + (high - low) * along


def fonts(rng: np.random.Generator, digit: int) -> bytes:
    """Clean printed digits, dark on light."""
    return _encode(_printed(rng, digit, ink=int(rng.integers(0, 60)), paper=int(rng.integers(215, 256))))


def coloured_paper(rng: np.random.Generator, digit: int) -> bytes:
    """Dark ink on coloured paper, as RGB PNG or JPEG."""
    paper = tuple(int(v) for v in rng.integers(150, 256, 3))
    ink = tuple(int(v) for v in rng.integers(0, 70, 3))
    picture = _printed(rng, digit, ink=ink, paper=paper, mode="RGB")
    return _encode(picture, "JPEG", int(rng.integers(60, 95))) if rng.random() < 0.5 else _encode(picture)


def holes(image: Image.Image) -> int:
    """Enclosed paper regions of a dark-on-light glyph: 1 for a 0, 2 for an 8."""
    from serving.inference.ink import components

    paper = np.asarray(image.convert("L")) >= 128
    labels = components(paper)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return len(np.setdiff1d(np.unique(labels[paper]), border))


def marker(rng: np.random.Generator, digit: int) -> bytes:
    """Thick marker strokes: an outline of 6-12% of the glyph's height on each side of a regular
    face's strokes (bold faces close their holes). A glyph whose thick strokes fill or split a
    hole that the font's thin glyph has (a 6 gone solid, a dotted 0 become a theta) is drawn
    again: no reader could tell it, so it measures the pen, not the reader."""
    while True:
        seed, ink = int(rng.integers(2**32)), int(rng.integers(0, 50))
        fraction = float(rng.uniform(0.06, 0.12))
        thick = _printed(np.random.default_rng(seed), digit, ink, 255, fraction, regular_only=True)
        if holes(thick) == holes(_printed(np.random.default_rng(seed), digit, ink, 255, 0.0, regular_only=True)):
            return _encode(thick)


def noise_jpeg(rng: np.random.Generator, digit: int) -> bytes:
    """Sensor noise (sigma 10-25 gray levels), then JPEG at quality 20."""
    pixels = _gray(_printed(rng, digit, ink=int(rng.integers(0, 60)), paper=int(rng.integers(200, 240))))
    return _encode(_image(pixels + rng.normal(0, rng.uniform(10, 25), pixels.shape)), "JPEG", 20)


def gradient(rng: np.random.Generator, digit: int) -> bytes:
    """Uneven light: the page goes from about 180 to 240 gray across the picture."""
    pixels = _gray(_printed(rng, digit, ink=0, paper=255)) / 255.0
    light = _ramp(pixels.shape[0], rng, rng.uniform(170, 190), rng.uniform(230, 250))
    ink_level = rng.uniform(20, 60)
    return _encode(_image(ink_level + (light - ink_level) * pixels))


@lru_cache(maxsize=1)
def _handwriting() -> tuple[np.ndarray, np.ndarray]:
    from training.data import mnist_arrays  # real handwriting, loaded only when this family is drawn

    return mnist_arrays(train=False)


def handwriting_photo(rng: np.random.Generator, digit: int) -> bytes:
    """Real handwriting (an MNIST test digit) as a phone photo of paper: pen on a light page with
    a margin, out of focus, lit unevenly, a little noise, JPEG."""
    images, labels = _handwriting()
    choices = np.flatnonzero(labels == digit)
    ink = images[int(rng.choice(choices))].astype(np.float32) / 255.0
    side = int(rng.integers(96, 200))
    digit_side = int(side * rng.uniform(0.5, 0.8))
    pen = np.asarray(Image.fromarray(ink).resize((digit_side, digit_side), Image.Resampling.BICUBIC), np.float32)
    page = np.zeros((side, side), np.float32)
    top, left = (int(rng.integers(0, side - digit_side + 1)) for _ in range(2))
    page[top:top + digit_side, left:left + digit_side] = np.clip(pen, 0, 1)
    light = _ramp(side, rng, rng.uniform(150, 200), rng.uniform(215, 250))
    ink_level = rng.uniform(20, 70)
    photo = _image(ink_level + (light - ink_level) * (1 - page)).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    noisy = _gray(photo) + rng.normal(0, rng.uniform(3, 10), (side, side))
    return _encode(_image(noisy), "JPEG", int(rng.integers(50, 90)))


FAMILIES: dict[str, Picture] = {
    "fonts": fonts,
    "coloured-paper": coloured_paper,
    "marker": marker,
    "noise-jpeg": noise_jpeg,
    "gradient": gradient,
    "handwriting-photo": handwriting_photo,
}


def family(name: str, count: int, seed: int = 0) -> list[tuple[int, bytes]]:
    """``count`` pictures of the family, digits 0-9 in turn, each (label, encoded bytes)."""
    rng = np.random.default_rng([seed, list(FAMILIES).index(name)])
    return [(index % 10, FAMILIES[name](rng, index % 10)) for index in range(count)]
