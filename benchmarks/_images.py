"""Photo-like JPEGs generated in memory for the ingest benchmark: no binary fixtures.

A smooth colour field (a tiny random image scaled up) plus per-channel Gaussian noise: it
compresses like a real photo (a few MB for 12 MP) instead of like a flat test pattern.
"""

from __future__ import annotations

import io
import random
import struct

from PIL import Image, ImageChops

_SOI = b"\xff\xd8"
_COM = b"\xff\xfe"
NONCE_SEGMENT_BYTES = 2 + 2 + 24
"""Bytes ``unique`` adds: the COM marker, its length field and a fixed-width payload."""


def photo(width: int, height: int, *, noise_sigma: float, seed: int) -> Image.Image:
    rnd = random.Random(seed)
    small = Image.new("RGB", (32, 24))
    small.putdata(
        [(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(768)]
    )
    base = small.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.merge("RGB", [Image.effect_noise((width, height), noise_sigma) for _ in "RGB"])
    # effect_noise is centred on 128: add it as a signed offset to the colour field.
    return ImageChops.add(base, noise, scale=1.0, offset=-128)


def encode_jpeg(im: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def upload_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """The standard upload: 12 MP, quality 90, about 4 MB."""
    return encode_jpeg(photo(width, height, noise_sigma=10, seed=1), quality=90)


def large_jpeg(total_bytes: int, width: int = 6000, height: int = 4500) -> bytes:
    """A 27 MP high-quality JPEG of exactly ``total_bytes`` once ``unique`` has been applied.

    The best quality whose encoding fits is chosen; the few bytes left over are padding after
    the EOI marker, which decoders never read (real camera files often carry such trailers).
    """
    im = photo(width, height, noise_sigma=40, seed=2)
    budget = total_bytes - NONCE_SEGMENT_BYTES
    low, high, best = 50, 98, b""
    while low <= high:
        quality = (low + high) // 2
        data = encode_jpeg(im, quality)
        if len(data) <= budget:
            best, low = data, quality + 1
        else:
            high = quality - 1
    if not best:
        raise ValueError(f"a {width}x{height} JPEG does not fit in {total_bytes} bytes")
    return best + b"\0" * (budget - len(best))


def unique(jpeg: bytes, n: int) -> bytes:
    """The same image with a COM segment holding ``n``: new bytes, so a new original blob."""
    if not jpeg.startswith(_SOI):
        raise ValueError("not a JPEG")
    payload = f"loraforge-bench {n:08d}".encode()
    assert len(payload) == NONCE_SEGMENT_BYTES - 4
    return _SOI + _COM + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def zone_plate(width: int = 4000, height: int = 3000) -> Image.Image:
    """Concentric rings whose frequency rises from 0 at the centre to ~0.3 cycles per pixel
    in the corners: after a 2x reduction the outer rings lie beyond the display's Nyquist
    limit, where any resampler short of a proper low-pass filter shows moiré."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = (x - width / 2) ** 2 + (y - height / 2) ** 2
    grey = 127.5 + 127.5 * np.cos(np.pi / (2 * max(width, height)) * r2)
    return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
