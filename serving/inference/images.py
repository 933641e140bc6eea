"""Image decoding, limits and model-input conventions for every image endpoint.

One module so that the service and the training evaluation prepare images with the same
numbers: training imports these constants and functions (NumPy and Pillow only), so there is no
training/serving skew to drift into.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from serving.errors import ServiceError
from serving.inference import ink

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
FORMATS = ("PNG", "JPEG", "BMP", "GIF")

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # MNIST training-set pixel statistics in [0, 1]
MNIST_SIZE, MNIST_BOX = 28, 20  # digits fit a 20x20 box centred by mass in 28x28 (LeCun et al.)
MNIST_CENTRE = 14.0  # measured on the test set: the centre of mass sits at pixel index 14.0 ± 0.3
INK_THRESHOLD = 0.05  # fraction of the ink range below which a pixel counts as background


class ImageError(ServiceError):
    """An upload the service cannot use; ``status`` is the HTTP status to answer with."""


def decode(data: bytes, field: str = "image") -> Image.Image:
    """Open an upload with the service's limits; GIFs give their first frame."""
    if not data:
        raise ImageError(f"{field}: empty upload")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{field}: {len(data)} bytes is over the {MAX_BYTES} byte limit", status=413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is stricter
            image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise ImageError(f"{field}: over the {MAX_PIXELS // 1_000_000} megapixel limit", status=413) from None
    except UnidentifiedImageError:
        raise ImageError(f"{field}: not an image (expected {', '.join(FORMATS)})") from None
    width, height = image.size
    if image.format not in FORMATS:
        raise ImageError(f"{field}: {image.format} images are not accepted (use {', '.join(FORMATS)})", status=415)
    if width * height > MAX_PIXELS:
        raise ImageError(f"{field}: {width}x{height} is over the {MAX_PIXELS // 1_000_000} megapixel limit",
                         status=413)
    if width == 0 or height == 0:
        raise ImageError(f"{field}: zero-size image ({width}x{height})")
    try:
        image.seek(0)
        image.load()  # decode now: truncated files fail here, not inside the model call
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{field}: truncated or corrupt image ({error})") from None
    return image


def _on_white(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white, the way a viewer shows a transparent drawing."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image


def to_mnist(image: Image.Image, field: str = "image") -> np.ndarray:
    """Any digit picture -> MNIST conventions: (1, 28, 28) float32, normalized like training.

    Grayscale; the ink apart from the paper (``ink.ink``: light flattened, noise and specks
    dropped, ink 0..1); crop to the ink; fit into 20x20 keeping the aspect ratio; place in 28x28
    with the centre of mass at the centre; then (x - mean) / std.
    """
    strokes = ink.ink(_on_white(image).convert("L"))
    if strokes is None:
        raise ImageError(f"{field}: no digit found (the image is blank or has no contrast)")
    rows, cols = np.nonzero(strokes > INK_THRESHOLD)
    crop = strokes[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = MNIST_BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    box = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    box = np.clip(box, 0.0, 1.0)
    mass = box.sum()
    cy = float((box.sum(axis=1) * np.arange(box.shape[0])).sum() / mass)
    cx = float((box.sum(axis=0) * np.arange(box.shape[1])).sum() / mass)
    top = int(np.clip(round(MNIST_CENTRE - cy), 0, MNIST_SIZE - box.shape[0]))
    left = int(np.clip(round(MNIST_CENTRE - cx), 0, MNIST_SIZE - box.shape[1]))
    canvas = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    canvas[top:top + box.shape[0], left:left + box.shape[1]] = box
    return ((canvas - MNIST_MEAN) / MNIST_STD)[None]


def pixels_to_image(pixels: list[list[float]]) -> Image.Image:
    """A client's 28x28 array of 0-255 values as a grayscale image for ``to_mnist``."""
    return Image.fromarray(np.asarray(pixels, dtype=np.float32).round().astype(np.uint8), mode="L")


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` (torchvision's ``Resize(int)`` arithmetic)."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    return image.resize(new_size, Image.Resampling.BILINEAR)


def to_classifier_input(image: Image.Image, resize: int, crop: int, mean: list[float], std: list[float]) -> np.ndarray:
    """Evaluation transform of an ImageNet-style CNN: (3, crop, crop) float32, normalized."""
    resized = resize_shorter_side(_on_white(image).convert("RGB"), resize)
    width, height = resized.size
    left, top = int(round((width - crop) / 2.0)), int(round((height - crop) / 2.0))
    array = np.asarray(resized.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    return ((array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(2, 0, 1)


def grid(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """(N, H, W) uint8 -> one image, row-major, ``columns`` wide (default: nearly square)."""
    n, height, width = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    canvas = np.zeros((rows * (height + gap) + gap, columns * (width + gap) + gap), np.uint8)
    for index, image in enumerate(images):
        top, left = gap + (index // columns) * (height + gap), gap + (index % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = image
    return canvas


def png(image: np.ndarray) -> bytes:
    """One uint8 image, gray (H, W) or RGB (H, W, 3), as PNG bytes (no timestamps: the same pixels
    give the same bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def heat_map(ink: np.ndarray, values: np.ndarray, scale: int = 10) -> np.ndarray:
    """A digit (H, W ink in [0, 1]) in dim gray under ``values``: red where positive, blue where
    negative, opaque at the largest magnitude; each pixel ``scale`` x ``scale`` (RGB uint8)."""
    gray = np.repeat((40 + 120 * np.clip(ink, 0, 1))[..., None], 3, axis=2)
    strength = np.clip(np.abs(values) / max(float(np.abs(values).max()), 1e-12), 0, 1)[..., None]
    colour = np.where((values >= 0)[..., None], np.array([230.0, 40, 30]), np.array([40.0, 90, 230]))
    blended = (1 - strength) * gray + strength * colour
    return np.kron(blended, np.ones((scale, scale, 1))).round().astype(np.uint8)
