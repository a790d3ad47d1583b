"""Photo-like JPEGs and broken variants of them, for the JPEG ingest tests (no fixtures).

``photo`` compresses like a camera picture (a smooth colour field under fine noise), so a
resampler's loss shows in PSNR; ``broken`` makes the shapes of damage an upload arrives with.
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
from PIL import Image, ImageChops

from tests import imagefactory


def photo(width: int, height: int, *, seed: int = 1) -> Image.Image:
    """A smooth random colour field plus per-channel noise (sigma 10)."""
    rnd = random.Random(seed)
    small = Image.new("RGB", (16, 12))
    small.putdata([tuple(rnd.randrange(256) for _ in range(3)) for _ in range(16 * 12)])
    base = small.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.merge("RGB", [Image.effect_noise((width, height), 10) for _ in "RGB"])
    return ImageChops.add(base, noise, scale=1.0, offset=-128)


def photo_jpeg(width: int, height: int, *, seed: int = 1, progressive: bool = False) -> bytes:
    return imagefactory.encoded(photo(width, height, seed=seed), progressive=progressive)


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio of two same-size 8-bit images, in dB (inf when equal)."""
    assert a.size == b.size
    assert a.mode == b.mode
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def scan_start(data: bytes) -> int:
    """Where the first scan's entropy-coded data begins (after its SOS header)."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def broken(data: bytes, rnd: random.Random) -> tuple[str, bytes]:
    """One damaged copy of ``data``: cut short, without its end marker, bits flipped or bytes
    overwritten in the scan data or in the headers. Returns (kind, bytes)."""
    start = scan_start(data)
    kind = rnd.choice(["cut", "no_eoi", "flip", "burst", "header"])
    damaged = bytearray(data)
    if kind == "cut":
        return kind, data[: rnd.randrange(start, len(data) - 2)]
    if kind == "no_eoi":
        return kind, data[: -rnd.choice([1, 2])]
    if kind == "flip":
        for _ in range(rnd.randrange(1, 4)):
            damaged[rnd.randrange(start, len(data) - 2)] ^= 1 << rnd.randrange(8)
    elif kind == "burst":
        at, n = rnd.randrange(start, len(data) - 60), rnd.randrange(1, 50)
        damaged[at : at + n] = rnd.randbytes(n)
    else:
        damaged[rnd.randrange(2, start)] = rnd.randrange(256)
    return kind, bytes(damaged)


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.copy()
