"""How close the display variant is to an exact Lanczos resize: PSNR in dB, libvips path and
Pillow-only path, on the benchmark's photo-like upload and on a zone plate (fine periodic
patterns: where a reduced-scale decode shows moiré).

Two figures per picture and path: the stored display variant (what users get; the targets
apply to it), which includes the JPEG quality-90 re-encoding both paths share, and the
resampled pixels before that encoding (the resize choice alone). The photo is the upload's
generator with sensor-like noise (sigma 4); the upload itself (sigma 10, white noise at
pixel level, for camera-like file sizes) is scored too: no quality-90 JPEG of it keeps much
above 38 dB, whichever path resized it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from benchmarks import _images as images
from loraforge.adapters.imaging import vips_resample
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor, _fit_in_stripes
from loraforge.domain.entities import ALL_FORMATS

PHOTO_MIN_DB = 40.0
ZONE_PLATE_MAX_LOSS_DB = 3.0
DISPLAY = 2048


@dataclass
class Score:
    """PSNR (dB) of one picture's display against the exact Lanczos reference."""

    picture: str
    libvips_db: float
    pillow_db: float
    libvips_pixels_db: float
    pillow_pixels_db: float


@dataclass
class Quality:
    width: int
    height: int
    photo: Score
    zone_plate: Score
    upload: Score


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def display_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = DISPLAY / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def exact_lanczos(full: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos-3 over the whole support in 32-bit float per channel (no fixed-point maths,
    no box pre-reduction), rounded to 8 bits once at the end."""
    channels = []
    for channel in full.convert("RGB").split():
        resized = np.asarray(channel.convert("F").resize(size, Image.Resampling.LANCZOS))
        channels.append(Image.fromarray(np.clip(np.rint(resized), 0, 255).astype(np.uint8)))
    return Image.merge("RGB", channels)


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def pillow_pixels(data: bytes, box: tuple[int, int] = (DISPLAY, DISPLAY)) -> Image.Image:
    """The Pillow path's resampled pixels: ``draft`` to ``box``, then Lanczos over stripes."""
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", box)
        im.load()
        return _fit_in_stripes(im, DISPLAY)


def libvips_pixels(data: bytes) -> Image.Image:
    """The libvips path's resampled pixels (``vips_resample.fit``)."""
    size = size_of(data)
    fitted = vips_resample.fit(io.BytesIO(data), mode="RGB", size=size, out=display_size(size))
    if fitted is None:
        raise RuntimeError("libvips refused a benchmark picture")
    return fitted


def score(picture: str, data: bytes) -> Score:
    reference = exact_lanczos(decode(data), display_size(size_of(data)))
    stored = []
    for vips_jpeg in (True, False):
        processor = PillowImageProcessor(max_pixels=1 << 30, max_frames=1, vips_jpeg=vips_jpeg)
        display = processor.process(io.BytesIO(data), allowed=ALL_FORMATS).display
        stored.append(psnr(decode(display), reference))
    pixels = [psnr(libvips_pixels(data), reference), psnr(pillow_pixels(data), reference)]
    return Score(picture, *stored, *pixels)


def measure(upload: bytes) -> Quality:
    """Both paths on a photo, a zone plate (JPEG quality 95) and ``upload`` (the benchmark's
    12 MP upload), all of the upload's size."""
    width, height = size_of(upload)
    photo = images.photo(width, height, noise_sigma=4, seed=1)
    return Quality(
        width,
        height,
        photo=score("photo", images.encode_jpeg(photo, quality=90)),
        zone_plate=score("zone plate", images.encode_jpeg(images.zone_plate(width, height), 95)),
        upload=score("benchmark upload", upload),
    )
