"""The dataset check's measures on real pixels: focus, exposure, faces, perceptual hashes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from loraforge.adapters.imaging.inspection import OpenCvInspector
from loraforge.domain.dataset import (
    BLURRY_BELOW,
    NEAR_DUPLICATE_BITS,
    OVEREXPOSED_LUMA,
    TOO_DARK_LUMA,
    hamming,
)
from tests import imagefactory
from tests.imagefactory import scene

FACE = Path(__file__).resolve().parents[2] / "fixtures" / "astronaut_face.jpg"


def jpeg(picture: Image.Image, quality: int = 90) -> bytes:
    return imagefactory.encoded(picture, quality=quality)


@pytest.fixture(scope="module")
def inspector() -> OpenCvInspector:
    return OpenCvInspector()


def test_a_sharp_picture_passes_and_its_blurred_copy_does_not(inspector: OpenCvInspector) -> None:
    sharp = scene(1)
    assert inspector.inspect(jpeg(sharp)).sharpness > 2 * BLURRY_BELOW
    blurred = sharp.filter(ImageFilter.GaussianBlur(3))
    assert inspector.inspect(jpeg(blurred)).sharpness < BLURRY_BELOW


def test_exposure_is_measured_as_mean_luma_and_clipped_shares(inspector: OpenCvInspector) -> None:
    normal = inspector.inspect(jpeg(scene(1)))
    assert TOO_DARK_LUMA < normal.luma < OVEREXPOSED_LUMA
    dark = inspector.inspect(jpeg(scene(1).point(lambda v: v // 8)))
    assert dark.luma < TOO_DARK_LUMA
    assert dark.dark_share > normal.dark_share
    bright = inspector.inspect(jpeg(scene(1).point(lambda v: min(255, v * 4))))
    assert bright.luma > OVEREXPOSED_LUMA
    assert bright.bright_share > 0.5


def test_near_copies_hash_close_and_other_pictures_far(inspector: OpenCvInspector) -> None:
    original = inspector.inspect(jpeg(scene(1))).phash
    smaller = inspector.inspect(jpeg(scene(1).resize((640, 480)), quality=60)).phash
    other = inspector.inspect(jpeg(scene(2))).phash
    assert len(original) == 16
    assert hamming(original, smaller) <= NEAR_DUPLICATE_BITS
    assert hamming(original, other) > 2 * NEAR_DUPLICATE_BITS


def test_frontal_faces_are_counted(inspector: OpenCvInspector) -> None:
    face = Image.open(FACE)
    assert inspector.inspect(FACE.read_bytes()).faces == 1
    pair = Image.new("RGB", (face.width * 2, face.height))
    pair.paste(face, (0, 0))
    pair.paste(face, (face.width, 0))
    assert inspector.inspect(jpeg(pair)).faces == 2
    assert inspector.inspect(jpeg(scene(1))).faces == 0


def test_transparency_counts_as_white_not_black(inspector: OpenCvInspector) -> None:
    clear = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    buffer = io.BytesIO()
    clear.save(buffer, format="PNG")
    assert inspector.inspect(buffer.getvalue()).luma > OVEREXPOSED_LUMA
