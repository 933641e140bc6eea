"""Upload decoding limits and MNIST conventions, on real MNIST digits and crafted files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving.inference import images, ink
from tests.pictures import png, png_header
from training.data import mnist_arrays


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = mnist_arrays(train=False)
    return x[:50], y[:50]


def _unnormalize(array: np.ndarray) -> np.ndarray:
    return array[0] * images.MNIST_STD + images.MNIST_MEAN


def test_mnist_digits_stay_mnist_digits(digits):
    x, _ = digits
    for image in x[:20]:
        restored = _unnormalize(images.to_mnist(Image.fromarray(image)))
        assert np.abs(restored - image / 255.0).mean() < 0.1


def test_polarity_size_and_colour_do_not_matter(digits):
    x, _ = digits
    reference = images.to_mnist(Image.fromarray(x[0]))
    inverted_big_rgb = Image.fromarray(255 - x[0]).resize((280, 280), Image.Resampling.BICUBIC).convert("RGB")
    assert np.abs(images.to_mnist(inverted_big_rgb) - reference).mean() * images.MNIST_STD < 0.06


def test_digit_is_centred_by_mass_in_a_20_pixel_box():
    canvas = np.zeros((100, 300), np.uint8)
    canvas[10:40, 200:220] = 255  # an off-centre bar
    result = _unnormalize(images.to_mnist(Image.fromarray(canvas)))
    rows, cols = np.nonzero(result > 0.5)
    assert rows.max() - rows.min() + 1 <= 20
    mass_row = (result.sum(axis=1) * np.arange(28)).sum() / result.sum()
    mass_col = (result.sum(axis=0) * np.arange(28)).sum() / result.sum()
    assert abs(mass_row - images.MNIST_CENTRE) <= 0.6 and abs(mass_col - images.MNIST_CENTRE) <= 0.6


def test_transparent_drawing_is_flattened_on_white():
    rgba = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (25, 10, 35, 50))  # black stroke on a transparent canvas
    result = _unnormalize(images.to_mnist(rgba))
    assert result.max() > 0.9 and result[0, 0] == 0.0


def _page(digit: np.ndarray, side: int = 160) -> np.ndarray:
    """An MNIST digit written on a page: dark ink on white, the digit 60% of the side, in 0..1."""
    pen = np.asarray(Image.fromarray(digit).resize((side * 3 // 5,) * 2, Image.Resampling.BICUBIC), np.float32)
    page = np.zeros((side, side), np.float32)
    page[side // 5:side // 5 + pen.shape[0], side // 5:side // 5 + pen.shape[1]] = np.clip(pen / 255.0, 0, 1)
    return 1.0 - page


def _read(page: np.ndarray) -> np.ndarray:
    return _unnormalize(images.to_mnist(Image.fromarray(np.clip(page * 255, 0, 255).astype(np.uint8))))


def _agreement(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.corrcoef(first.ravel(), second.ravel())[0, 1])


def _ramp(side: int, low: float, high: float) -> np.ndarray:
    return np.tile(np.linspace(low, high, side, dtype=np.float32), (side, 1))


def test_uneven_light_is_flattened_not_read_as_ink(digits):
    x, _ = digits
    for digit in x[:10]:
        clean = _read(_page(digit))
        page = _page(digit)
        lit = 0.1 + (_ramp(len(page), 0.7, 0.95) - 0.1) * page  # paper 0.7 -> 0.95 across, ink 0.1
        shaded = _read(lit)
        assert _agreement(shaded, clean) > 0.8
        rows, cols = np.nonzero(shaded > 0.05)
        assert rows.max() - rows.min() <= 21 and cols.max() - cols.min() <= 21  # the digit's box, not the page's


def test_noise_and_jpeg_blocks_are_not_ink(digits):
    x, _ = digits
    rng = np.random.default_rng(0)
    for digit in x[:10]:
        clean = _read(_page(digit))
        noisy = np.clip(_page(digit) * 0.85 + rng.normal(0, 25 / 255, (160, 160)), 0, 1)
        buffer = io.BytesIO()
        Image.fromarray((noisy * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=20)
        read = _unnormalize(images.to_mnist(images.decode(buffer.getvalue())))
        assert _agreement(read, clean) > 0.8
        rows, cols = np.nonzero(read > 0.05)
        assert rows.max() - rows.min() <= 21 and cols.max() - cols.min() <= 21  # the digit's box, not the page's


def test_a_thick_marker_digit_keeps_its_shape():
    page = np.ones((120, 120), np.float32)
    page[20:100, 40:56] = 0.05  # the upright of a "1", 16 px wide: 20% of its height
    page[20:36, 28:56] = 0.05   # its flag
    read = _read(page)
    rows, cols = np.nonzero(read > 0.5)
    assert rows.max() - rows.min() + 1 >= 19  # still 20 pixels tall
    assert read[:, 6:9].max() == 0.0 or read[:, 19:22].max() == 0.0  # and narrow: not a blob filling the box


def test_specks_away_from_the_digit_are_dropped(digits):
    x, _ = digits
    page = _page(x[0])
    clean = _read(page)
    page[5:8, 5:8] = 0.0  # a 3x3 speck in the top left corner, far from the digit
    page[150:154, 150:153] = 0.0
    assert _agreement(_read(page), clean) > 0.99


@pytest.mark.parametrize("page", [
    np.ones((200, 200), np.float32),               # empty white page
    _ramp(200, 0.6, 0.95),                         # an empty page under uneven light
    np.full((50, 80), 0.02, np.float32),           # a black picture
], ids=["white", "lit", "black"])
def test_a_page_without_a_digit_is_no_digit_found(page):
    with pytest.raises(images.ImageError, match="no digit") as caught:
        _read(page)
    assert caught.value.status == 400


def test_blank_image_is_an_error():
    with pytest.raises(images.ImageError, match="no digit"):
        images.to_mnist(Image.new("L", (28, 28), 255))


@pytest.mark.parametrize("data, status, message", [
    (b"", 400, "empty upload"),
    (b"hello, not a picture", 400, "not an image"),
    (png_header(10_000, 5_000), 413, "megapixel"),
    (png_header(0, 10), 400, "image"),
    (b"\0" * (images.MAX_BYTES + 1), 413, "byte limit"),
])
def test_decode_limits(data, status, message):
    with pytest.raises(images.ImageError, match=message) as caught:
        images.decode(data)
    assert caught.value.status == status


def test_truncated_file_is_an_error(digits):
    data = png(np.asarray(Image.fromarray(digits[0][0]).resize((200, 200))))
    with pytest.raises(images.ImageError, match="truncated"):
        images.decode(data[: len(data) // 2])


def test_gif_first_frame_and_other_formats(digits):
    frames = [Image.fromarray(digits[0][0]), Image.fromarray(digits[0][1])]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    first = images.decode(buffer.getvalue())
    assert np.array_equal(np.asarray(first.convert("L")), digits[0][0])
    for fmt in ("JPEG", "BMP"):
        buffer = io.BytesIO()
        frames[0].save(buffer, format=fmt)
        assert images.decode(buffer.getvalue()).size == (28, 28)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF")
    with pytest.raises(images.ImageError) as caught:
        images.decode(buffer.getvalue())
    assert caught.value.status == 415


def test_classifier_input_matches_torchvision_eval_transform(tmp_path):
    from torchvision import transforms

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 451, 3), dtype=np.uint8))
    ours = images.to_classifier_input(photo, 256, 224, [0.5] * 3, [0.5] * 3)
    theirs = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                 transforms.Normalize([0.5] * 3, [0.5] * 3)])(photo).numpy()
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert np.abs(ours - theirs).max() < 1e-5


def _flood_fill_labels(mask: np.ndarray) -> np.ndarray:
    """The obvious 8-neighbour flood fill, as the reference for the run-based labelling."""
    labels, count = np.zeros(mask.shape, int), 0
    for start in zip(*np.nonzero(mask)):
        if labels[start]:
            continue
        count += 1
        labels[start], queue = count, [start]
        while queue:
            row, col = queue.pop()
            for r in range(max(row - 1, 0), min(row + 2, mask.shape[0])):
                for c in range(max(col - 1, 0), min(col + 2, mask.shape[1])):
                    if mask[r, c] and not labels[r, c]:
                        labels[r, c] = count
                        queue.append((r, c))
    return labels


def test_connected_components_match_a_flood_fill():
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = rng.random((int(rng.integers(1, 25)), int(rng.integers(1, 25)))) < rng.uniform(0.1, 0.7)
        labels, expected = ink.components(mask), _flood_fill_labels(mask)
        assert np.array_equal(labels > 0, mask)
        pairs = set(zip(labels[mask].tolist(), expected[mask].tolist()))  # the same partition, whatever the names
        assert len(pairs) == len(set(labels[mask].tolist())) == len(set(expected[mask].tolist()))
