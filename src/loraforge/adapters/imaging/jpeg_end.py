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

_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOS = 0xDA
_EOI = 0xD9
_STANDALONE = frozenset({0x01, 0xD8})  # TEM, SOI: no length field (RSTn never match above)


def ends_complete(data: bytes | memoryview) -> bool:
    """True when ``data`` (a whole JPEG file, from its SOI) has at least one scan and an EOI
    marker after its last scan; False when it stops before one, or a segment's length runs
    past the end or is impossible."""
    pos, scans = 2, 0
    while True:
        found = _MARKER.search(data, pos)
        if found is None:
            return False
        marker, after = data[found.end() - 1], found.end()
        if marker == _EOI:
            return scans > 0
        if marker in _STANDALONE:
            pos = after
            continue
        if after + 2 > len(data):
            return False
        length = int.from_bytes(data[after : after + 2], "big")
        if length < 2:
            return False
        scans += marker == _SOS
        pos = after + length
