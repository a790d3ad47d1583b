"""Does a JPEG's picture data run to its end-of-image marker?

libjpeg pads a file that stops early with grey and only warns ("premature end of JPEG file"),
so a decoder that reports success has not shown the file complete. Before the libvips path
decodes a JPEG (``vips_resample``), this walk refuses one whose scans are not followed by an
EOI marker: every truncated upload, cut anywhere after its headers, is refused without decoding
a pixel, as the Pillow path refuses it after a full decode.

The walk skips each segment by its length (an EXIF thumbnail's own EOI inside APP1 is never
seen) and searches the entropy-coded data for the next marker in C (``re``): a byte 0xFF there
is followed by 0x00 (stuffing), 0xD0-0xD7 (restart markers) or more 0xFF (fill) unless it
starts a marker. Bytes after the EOI (camera trailers, padding) are not read.
"""

from __future__ import annotations

import re
from typing import BinaryIO

_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOS = 0xDA
_EOI = 0xD9
_STANDALONE = frozenset({0x01, 0xD8})  # TEM, SOI: no length field (RSTn never match above)
_CHUNK = 1 << 20  # read at a time: the upload is never held in memory whole


def ends_complete(stream: BinaryIO) -> bool:
    """True when the JPEG in ``stream`` (a whole file, read from its SOI at offset 0) has at
    least one scan and an EOI marker after its last scan; False when it stops before one, or
    a segment's length runs past the end or is impossible. The position is left anywhere."""
    pos, scans = 2, 0
    while True:
        found = _next_marker(stream, pos)
        if found is None:
            return False
        marker, after = found
        if marker == _EOI:
            return scans > 0
        if marker in _STANDALONE:
            pos = after
            continue
        stream.seek(after)
        field = stream.read(2)
        if len(field) < 2:
            return False
        length = int.from_bytes(field, "big")
        if length < 2:
            return False
        scans += marker == _SOS
        pos = after + length


def _next_marker(stream: BinaryIO, pos: int) -> tuple[int, int] | None:
    """The first marker at or after ``pos``: (its code, the offset just after it)."""
    while True:
        stream.seek(pos)
        chunk = stream.read(_CHUNK)
        found = _MARKER.search(chunk)
        if found is not None:
            return chunk[found.end() - 1], pos + found.end()
        if len(chunk) < _CHUNK:
            return None
        pos += len(chunk) - 1  # a 0xFF at the chunk's end may start a marker
