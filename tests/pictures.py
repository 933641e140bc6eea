"""Pictures the tests upload, shared by the test modules that send them."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# A 1x1 grey PNG: a valid image that holds no digit.
GREY_PIXEL_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                               "3a7e9b550000000a49444154789c63600000000200015d0bca340000000049454e44ae426082")


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims any size but holds no pixels: a cheap decompression-bomb stand-in."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))
