"""Images whose data ends before the picture their header declares are ``corrupt_image``.

Both shapes decoded "successfully" before (issue 10.4): a JPEG whose end-of-image marker comes
after 64 x 64 pixels of a declared 7000 x 7000 (libjpeg pads the rest with grey), and a PNG
whose pixels are all there but whose IEND chunk is missing. The bytes are made here.
"""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageFile

from loraforge.adapters.imaging import completeness
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.domain.entities import ALL_FORMATS, ImageFormat
from loraforge.domain.errors import ImageRejected


def jpeg(w: int, h: int, **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buffer, "JPEG", **params)
    return buffer.getvalue()


def claiming(data: bytes, width: int, height: int) -> bytes:
    """``data`` (a JPEG) with its frame header rewritten to declare ``width`` x ``height``."""
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return data[: i + 5] + struct.pack(">HH", height, width) + data[i + 9 :]


def png(w: int, h: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (w, h), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def process(data: bytes) -> None:
    processor = PillowImageProcessor(max_pixels=50_000_000, max_frames=10)
    processor.process(io.BytesIO(data), allowed=ALL_FORMATS)


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_smaller_than_its_declared_frame_is_corrupt(progressive: bool) -> None:
    lying = claiming(jpeg(64, 64, progressive=progressive), 7000, 7000)
    assert len(lying) < 1000

    with pytest.raises(ImageRejected) as caught:
        process(lying)

    assert caught.value.code == "corrupt_image"


def test_a_png_without_iend_is_corrupt() -> None:
    whole = png(64, 64)
    assert whole.endswith(b"IEND\xaeB`\x82")

    with pytest.raises(ImageRejected) as caught:
        process(whole[:-12])

    assert caught.value.code == "corrupt_image"


@pytest.mark.parametrize(
    "data",
    [
        jpeg(64, 64),
        jpeg(1001, 777, subsampling=0),
        jpeg(1000, 800, progressive=True),  # one colour: the least data a JPEG can have
        jpeg(1, 1),
        png(64, 64),
    ],
)
def test_complete_images_of_one_colour_pass(data: bytes) -> None:
    process(data)


def test_the_checks_keep_the_stream_position() -> None:
    for fmt, data in ((ImageFormat.JPEG, jpeg(16, 16)), (ImageFormat.PNG, png(16, 16))):
        stream = io.BytesIO(data)
        stream.seek(5)
        completeness.check_declared_size(stream, fmt)
        completeness.check_ends(stream, fmt)
        assert stream.tell() == 5


def test_pillow_never_loads_truncated_images() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
