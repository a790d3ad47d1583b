"""Display-size pixels of a large JPEG from libvips (pyvips), for ``PillowImageProcessor``.

Why: a 12 MP JPEG cost ~190 ms of CPU through Pillow, most of it the full-size Lanczos resize.
libvips decodes with libjpeg-turbo as Pillow does, then resamples with its vectorised
Lanczos-3 reducer while the decode streams through it (no full-size buffer is kept). It
decodes in full: the display variant keeps the quality of an exact Lanczos resize, fine
periodic patterns included, where a reduced-scale decode to near the display size aliases them
(BENCHMARKS.md, "Ingest"; ``benchmarks/resize_options.py``). libvips' thumbnailer would
decode at a reduced scale only from a 4x reduction on (``resamples``); such photos keep the
Pillow path.

What callers see stays Pillow's: the size is forced to exactly the one the Pillow path makes
(long side ``max_side``, the other rounded as Pillow rounds it), orientation is left to the
caller (from the EXIF Pillow read), and no colour management happens (an embedded ICC profile
is ignored, as Pillow ignores it). Only 3-component (YCbCr/RGB) and greyscale JPEGs come here;
CMYK ones keep Pillow's conversion.

The verdict on a broken file stays Pillow's too: the file must end with an EOI marker after
its scans (``jpeg_end``), and libvips fails on any libjpeg warning (``fail_on=warning``:
corrupt data, premature end of a segment, extraneous bytes). On any failure ``fit`` answers
None and the caller decodes the file with Pillow, which accepts or refuses it exactly as before.
"""

from __future__ import annotations

import functools
from typing import Any, BinaryIO

from PIL import Image

_BANDS = {"L": 1, "RGB": 3}
_MAX_FULL_DECODE_FACTOR = 4


@functools.cache
def _pyvips() -> Any:  # the module; pyvips is untyped
    """Import and set up libvips on first use (processes that never see a JPEG skip it)."""
    import pyvips

    # Every upload is new bytes: cached operations would only hold memory.
    pyvips.cache_set_max(0)
    # Images are decoded on the server's decode pool, several at once; a libvips worker pool
    # per image on top would only add threads (and per-thread malloc arenas).
    pyvips.concurrency_set(1)
    # Only libvips' own well-tested loaders; never ImageMagick or other fallbacks.
    pyvips.block_untrusted_set(True)
    return pyvips


def resamples(size: tuple[int, int], out: tuple[int, int]) -> bool:
    """Whether ``fit`` takes a JPEG of ``size`` to ``out``: while the reduction stays under
    4x (a long side under 8192 px for a 2048 px display). From 4x on, libvips' rule decodes at
    a reduced DCT scale ("shrink-on-load"), and at a reduced scale libvips 8.18 reports
    libjpeg's warnings without failing on them, so damaged scan data would be accepted; the
    Pillow path already decodes such photos at half scale or less (``draft``)."""
    return min(size[0] / out[0], size[1] / out[1]) < _MAX_FULL_DECODE_FACTOR


def fit(
    source: BinaryIO, *, mode: str, size: tuple[int, int], out: tuple[int, int]
) -> Image.Image | None:
    """The JPEG in ``source`` (read from offset 0, streamed: never held whole), whose header
    Pillow read as ``mode`` ("RGB" or "L") and ``size``, resampled (Lanczos 3) to exactly
    ``out``, orientation not applied, as a Pillow image of ``mode``; None when libvips reads
    the header otherwise or reports any problem with the data (the caller then decodes with
    Pillow). Raises ValueError for a mode or a reduction not handled here.
    """
    bands = _BANDS.get(mode)
    if bands is None:
        raise ValueError(f"vips_resample handles JPEGs in modes {sorted(_BANDS)}, not {mode}")
    if not resamples(size, out):
        raise ValueError(f"vips_resample decodes in full only: {size} to {out} is 4x or more")
    pyvips = _pyvips()
    # libvips calls back into the source while it decodes, and a collected source is a crash,
    # not an exception: it lives until this function returns, after the images that read it.
    reader = _source(pyvips, source)
    loaded = resized = None
    try:
        # The JPEG loader itself, not one chosen by sniffing, and ``fail_on`` given to it
        # (thumbnail's own ``fail_on`` argument does not reach its loader).
        loaded = pyvips.Image.jpegload_source(reader, access="sequential", fail_on="warning")
        if (loaded.width, loaded.height, loaded.bands, loaded.format) != (*size, bands, "uchar"):
            return None  # libvips reads this header otherwise than Pillow: Pillow decides
        resized = loaded.resize(
            out[0] / loaded.width, vscale=out[1] / loaded.height, kernel="lanczos3"
        )
        pixels = resized.write_to_memory()
        made = (resized.width, resized.height, resized.bands)
    except pyvips.Error:
        return None
    finally:
        loaded = resized = None
    if made != (*out, bands):
        return None
    return Image.frombytes(mode, out, pixels)


def _source(pyvips: Any, stream: BinaryIO) -> Any:
    """A libvips source reading ``stream`` as libjpeg asks for it (a few KiB at a time)."""
    stream.seek(0)
    source = pyvips.SourceCustom()
    source.on_read(stream.read)
    source.on_seek(stream.seek)
    return source
