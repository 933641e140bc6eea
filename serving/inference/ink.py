"""Ink and paper apart, the way document-imaging code does it, for pictures of one digit.

A phone photo of a digit on paper has uneven light, sensor noise and JPEG blocks; a single
"background level plus 5%" rule counts all of that as ink, so the digit's box spans the page and
the digit shrinks into a blob. Here, on a picture reduced to at most ``WORK_SIDE`` pixels (the
digit ends as 20x20 anyway, and averaging pixels averages noise away):

1. ink made bright: inverted when the border (the paper) is light;
2. a 3x3 median against specks and noise (pictures of at least ``MEDIAN_MIN_SIDE`` pixels:
   a 28x28 digit's strokes are only a few pixels wide);
3. the paper's own level everywhere (a grey-level opening on a coarse grid: each block's low
   percentile, then the 3x3 minimum and maximum of the blocks), subtracted: light that falls off
   across the page becomes flat;
4. Otsu's threshold on what is left separates ink from paper;
5. connected strokes (8-neighbour components) at least ``PART_SHARE`` of the largest are the
   digit; smaller specks are dropped, with everything else more than ``MARGIN`` pixels away.

NumPy and Pillow only: the serving image has neither SciPy nor OpenCV, and needs neither.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

WORK_SIDE = 96
MEDIAN_MIN_SIDE = 48
GRID = 8  # paper-level blocks per side: larger than any stroke, small against the page's light
PAPER_PERCENTILE = 10
PART_SHARE = 0.05  # a digit's separate strokes (a broken 5, a dotted 7) against noise specks
MARGIN = 2  # pixels kept around the strokes: their anti-aliased edges
MIN_CONTRAST = 0.1  # ink at least this far above the paper (0-1 scale) or there is no digit


def reduce(picture: Image.Image) -> np.ndarray:
    """An 8-bit grayscale picture area-averaged down to at most WORK_SIDE on its longer side (small
    ones stay as they are), then as floats in [0, 1]: a 40-megapixel upload never becomes a
    full-size float array."""
    width, height = picture.size
    factor = max(height, width) / WORK_SIDE
    if factor > 1:
        picture = picture.resize((max(1, round(width / factor)), max(1, round(height / factor))),
                                 Image.Resampling.BOX)
    return np.asarray(picture, dtype=np.float32) / 255.0


def border_level(gray: np.ndarray) -> float:
    """Median of the outermost pixels: the paper's level in a picture of one digit."""
    return float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))


def median3(gray: np.ndarray) -> np.ndarray:
    if min(gray.shape) < MEDIAN_MIN_SIDE:
        return gray
    as_bytes = Image.fromarray(np.clip(gray * 255.0, 0, 255).round().astype(np.uint8), mode="L")
    return np.asarray(as_bytes.filter(ImageFilter.MedianFilter(3)), dtype=np.float32) / 255.0


def _neighbourhood(grid: np.ndarray, reduce_fn) -> np.ndarray:
    padded = np.pad(grid, 1, mode="edge")
    h, w = grid.shape
    return reduce_fn([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])


def paper_level(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness at every pixel (ink bright): a coarse grey-level opening, smoothed."""
    height, width = gray.shape
    block_h, block_w = max(1, -(-height // GRID)), max(1, -(-width // GRID))
    padded = np.pad(gray, ((0, block_h * GRID - height), (0, block_w * GRID - width)), mode="edge")
    blocks = padded.reshape(GRID, block_h, GRID, block_w).transpose(0, 2, 1, 3).reshape(GRID, GRID, -1)
    grid = np.percentile(blocks, PAPER_PERCENTILE, axis=2).astype(np.float32)
    # Opening: a block a thick stroke covers takes its neighbours' paper, then levels come back up.
    grid = _neighbourhood(_neighbourhood(grid, np.minimum.reduce), np.maximum.reduce)
    smooth = Image.fromarray(grid, mode="F").resize((block_w * GRID, block_h * GRID), Image.Resampling.BILINEAR)
    return np.asarray(smooth, dtype=np.float32)[:height, :width]


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that maximises the between-class variance of the histogram (Otsu, 1979)."""
    counts, edges = np.histogram(values, bins=bins, range=(0.0, float(values.max()) or 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * centres)
    total, total_mass = weight[-1], mass[-1]
    below, above = weight[:-1], total - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * below / total - mass[:-1]) ** 2 / (below * above)
    return float(edges[1:][np.nanargmax(np.where((below > 0) & (above > 0), between, np.nan))])


def components(mask: np.ndarray) -> np.ndarray:
    """8-neighbour connected components: each pixel of ``mask`` gets its component's label (> 0).

    Union-find over each row's runs of ink, which touch a run of the row above when their
    columns overlap or meet diagonally: a few hundred runs, where pixel-wise label propagation
    needs as many whole-image passes as the longest stroke is long.
    """
    parent: list[int] = []

    def root(run: int) -> int:
        while parent[run] != run:
            parent[run] = parent[parent[run]]
            run = parent[run]
        return run

    runs: list[tuple[int, int, int]] = []  # (row, first column, last column)
    previous: list[int] = []
    for row, line in enumerate(mask):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], line.view(np.int8), [0]))))
        current, j = [], 0
        for first, stop in zip(edges[::2].tolist(), edges[1::2].tolist()):
            index = len(runs)
            runs.append((row, first, stop - 1))
            parent.append(index)
            while j < len(previous) and runs[previous[j]][2] < first - 1:  # both rows' runs are in column order
                j += 1
            k = j
            while k < len(previous) and runs[previous[k]][1] <= stop:
                parent[root(previous[k])] = root(index)
                k += 1
            current.append(index)
        previous = current
    labels = np.zeros(mask.shape, np.int32)
    for index, (row, first, last) in enumerate(runs):
        labels[row, first:last + 1] = root(index) + 1
    return labels


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return np.asarray(image.filter(ImageFilter.MaxFilter(2 * pixels + 1))) > 0


def ink(picture: Image.Image) -> np.ndarray | None:
    """Ink strength in [0, 1] (0: paper) of an 8-bit grayscale picture; None: no digit in it."""
    gray = reduce(picture)
    if border_level(gray) > 0.5:
        gray = 1.0 - gray
    gray = median3(gray)
    flat = np.clip(gray - paper_level(gray), 0.0, None)
    if float(flat.max()) < MIN_CONTRAST:
        return None
    strokes = flat > otsu(flat)
    labels = components(strokes)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    kept = np.isin(labels, np.flatnonzero(sizes >= PART_SHARE * sizes.max()))
    level = float(np.percentile(flat[kept], 90))
    if level < MIN_CONTRAST:
        return None
    return np.where(_grow(kept, MARGIN), np.clip(flat / level, 0.0, 1.0), 0.0).astype(np.float32)
