"""Upload decoding limits and MNIST conventions, on real MNIST digits and crafted files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving import images
from tests.pictures import png_header
from training.data import mnist_arrays


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


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
    data = _png(Image.fromarray(digits[0][0]).resize((200, 200)))
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
