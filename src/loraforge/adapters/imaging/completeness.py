"""Is all of the image there? Checks for files that decode "successfully" with data missing.

Pillow raises "image file is truncated" when a file simply stops (``LOAD_TRUNCATED_IMAGES`` is
False), but two shapes of missing data got through and were stored:

- A JPEG whose end-of-image marker comes before the scan covered the picture its header
  declares (a 692-byte file claiming 7000 x 7000 with 64 x 64 of data): libjpeg warns, pads the
  rest with grey and reports success. A Huffman-coded JPEG spends at least one bit on every
  8 x 8 block (the DC code of a sequential scan, or of a progressive DC scan), so a file smaller
  than ``blocks / 8`` bytes cannot hold the picture its header declares.
- A PNG without its ``IEND`` chunk: the pixels are in ``IDAT`` and decode, so only a walk over
  every chunk (``verify``, which also checks each chunk's CRC) sees that the end is missing.
"""

from __future__ import annotations

import math
from typing import BinaryIO

from PIL import Image, ImageFile

from loraforge.domain.entities import ImageFormat

# Baseline, extended and progressive Huffman JPEG. Lossless and arithmetic-coded ones
# (SOF3, SOF9...) can spend less than a bit per block: no lower bound applies to them.
_HUFFMAN_SOF = frozenset({0xC0, 0xC1, 0xC2})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI, EOI: no length field


class Incomplete(Exception):
    """The file's data ends before the image its header declares."""


def check_declared_size(stream: BinaryIO, fmt: ImageFormat) -> None:
    """Before decoding: raise ``Incomplete`` when ``stream`` (the whole upload) is too small
    for the picture its header declares. Reads headers only; the stream position is kept."""
    # Never pad a truncated file: the process-wide switch must stay off.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must be False")
    if fmt is ImageFormat.JPEG:
        position = stream.tell()
        try:
            _check_jpeg(stream)
        finally:
            stream.seek(position)


def check_ends(stream: BinaryIO, fmt: ImageFormat) -> None:
    """After decoding: raise ``Incomplete`` when the file's end is missing (a PNG's IEND).
    Runs after the decoder's own limits and checks, so a hostile file is refused by the
    cheaper checks first; the stream position is kept."""
    if fmt is ImageFormat.PNG:
        position = stream.tell()
        try:
            _check_png(stream)
        finally:
            stream.seek(position)


def _check_jpeg(stream: BinaryIO) -> None:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    blocks = _jpeg_min_blocks(stream.read(min(size, 1 << 20)))
    if blocks is not None and size * 8 < blocks:
        raise Incomplete(f"{size} bytes cannot hold the {blocks} blocks the header declares")


def _jpeg_min_blocks(data: bytes) -> int | None:
    """Blocks of the frame a Huffman-coded JPEG declares (each component on its own, the
    fewest any scan layout needs); None when there is no such frame header in ``data``."""
    i = 2  # after SOI
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None  # not at a marker: let the decoder judge the file
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _HUFFMAN_SOF:
            return _frame_blocks(data[i + 4 : i + 2 + length])
        if marker == 0xDA:  # start of scan before any frame header: broken, decoder judges
            return None
        i += 2 + length
    return None


def _frame_blocks(frame: bytes) -> int | None:
    if len(frame) < 6:
        return None
    height = int.from_bytes(frame[1:3], "big")
    width = int.from_bytes(frame[3:5], "big")
    count = frame[5]
    comps = [frame[6 + 3 * n : 9 + 3 * n] for n in range(count)]
    if not height or not width or not comps or any(len(c) < 3 for c in comps):
        return None
    factors = [(c[1] >> 4, c[1] & 0x0F) for c in comps]
    h_max = max(h for h, _ in factors) or 1
    v_max = max(v for _, v in factors) or 1
    return sum(
        math.ceil(math.ceil(width * h / h_max) / 8) * math.ceil(math.ceil(height * v / v_max) / 8)
        for h, v in factors
    )


def _check_png(stream: BinaryIO) -> None:
    stream.seek(0)
    with Image.open(stream, formats=["PNG"]) as im:
        try:
            im.verify()  # walks every chunk to IEND, checking CRCs; decodes nothing
        except (OSError, SyntaxError) as exc:
            raise Incomplete(str(exc)) from exc
