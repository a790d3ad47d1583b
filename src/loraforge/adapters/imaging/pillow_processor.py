"""``ImageProcessor`` on Pillow, with pillow-heif for HEIC/HEIF.

Uploaded bytes are hostile. The format comes from the magic bytes alone and Pillow may only try
that one plugin; the declared pixel count and frame count are checked before any pixel is
decoded; the first frame is then fully decoded so broken files fail at upload time; and every
decoder failure becomes a domain error. Derived variants are re-encoded from pixels only, so no
metadata of the upload (EXIF, GPS, XMP, ICC profile, comments) reaches them.
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from typing import BinaryIO

from PIL import ExifTags, Image

from loraforge.adapters.imaging import completeness, jpeg_end, vips_resample
from loraforge.domain.entities import ImageFormat, ProcessedImage
from loraforge.domain.errors import DomainError, ImageRejected, UnsupportedFormat

HEADER_BYTES = 64
"""How many leading bytes ``detect_format`` needs: every signature, ftyp brands included."""

_PILLOW_FORMAT = {
    ImageFormat.JPEG: "JPEG",
    ImageFormat.PNG: "PNG",
    ImageFormat.WEBP: "WEBP",
    ImageFormat.HEIF: "HEIF",  # the name pillow-heif registers its plugin under
    ImageFormat.BMP: "BMP",
    ImageFormat.GIF: "GIF",
}
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
_HEIF_BRANDS = _HEVC_BRANDS | {b"mif1", b"msf1", b"heif"}
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_BMP_DIB_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # transposed or rotated by 90 degrees
_JPEG_QUALITY = 90
_STRIPE_ROWS = 128  # output rows resampled at once; bounds the working memory beside the decode
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_COST_PREFIX_BYTES = 64 * 1024  # decode_cost reads no further: a header beyond is "unknown"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DATA_CHUNKS = frozenset({b"IDAT", b"fcTL", b"fdAT"})  # pixels; APNG frames and theirs
MAX_PNG_METADATA_CHUNKS = 256
"""Chunks other than IHDR, PLTE, IEND and pixel data a PNG may have. Real files carry a
handful (text, colour, physical size, APNG frame controls); Pillow parses each in Python,
so a 20 MB file of empty ones took ~8 s to reject."""
MAX_JPEG_SEGMENTS = 1024
"""Segments before the first scan: real files have a few dozen (an ICC profile may take up to
255 APP2 segments)."""
MAX_JPEG_STRAY_BYTES = 1024
_JPEG_END_OF_HEADERS = frozenset({0xDA, 0xD9})  # SOS: libjpeg decodes the rest in C; EOI
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length field
PNG_DATA_CHUNKS_PER_KIB = 1
"""Pixel-data chunks allowed per KiB of file (encoders write 8-64 KiB each), plus two per
allowed frame and ``MAX_PNG_METADATA_CHUNKS``: empty ones cost as much as metadata ones."""


def detect_format(head: bytes) -> ImageFormat | None:
    """The container format the first ``HEADER_BYTES`` announce, or None. Names never count."""
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageFormat.PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFormat.GIF
    # "BM" alone is just two letters that text can start with; a known DIB header size after
    # the 14-byte file header makes it a real signature.
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_DIB_HEADER_SIZES:
        return ImageFormat.BMP
    if head[4:8] == b"ftyp" and _is_heif_ftyp(head):
        return ImageFormat.HEIF
    return None


def _is_heif_ftyp(head: bytes) -> bool:
    """An ISO-BMFF ``ftyp`` box whose major or compatible brands say HEIF/HEIC."""
    box_end = min(int.from_bytes(head[:4], "big"), len(head))
    if box_end < 16:  # size, type, major brand and minor version are mandatory
        return False
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
    # AVIF shares the container and the "mif1" brand, but this pillow-heif build has no AV1
    # decoder: treat it as the unsupported format it is rather than as a corrupt HEIF.
    if brands & _AVIF_BRANDS and not brands & _HEVC_BRANDS:
        return False
    return bool(brands & _HEIF_BRANDS)


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIF on first use only, so processes that never see HEIC skip libheif.

    Two threads racing here may both register; registering is idempotent, so that is harmless.
    """
    import pillow_heif

    # Thumbnails, depth maps and auxiliary images are never used: don't even parse them.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


class PillowImageProcessor:
    """Validates uploaded images and derives a display image and a thumbnail from them."""

    def __init__(
        self,
        *,
        max_pixels: int,
        max_frames: int,
        display_max_side: int = 2048,
        thumbnail_max_side: int = 256,
        vips_jpeg: bool = True,
    ) -> None:
        """``vips_jpeg``: large JPEGs are resampled by libvips (``vips_resample``); False keeps
        every format on Pillow (the benchmarks compare the two)."""
        if min(max_pixels, max_frames, display_max_side, thumbnail_max_side) < 1:
            raise ValueError("image limits must be positive")
        self._max_pixels = max_pixels
        self._max_frames = max_frames
        self._display_max_side = display_max_side
        self._thumbnail_max_side = thumbnail_max_side
        self._vips_jpeg = vips_jpeg

    def process(self, source: BinaryIO, *, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        """Check and decode the image in ``source`` (read from its start) and derive variants."""
        # Pillow rewinds to 0 itself; a stream that cannot seek is buffered (its size was
        # capped by the transport already).
        stream: BinaryIO = source if source.seekable() else io.BytesIO(source.read())
        stream.seek(0)
        fmt = detect_format(stream.read(HEADER_BYTES))
        if fmt is None or fmt not in allowed:
            raise UnsupportedFormat(_unsupported_message(fmt, allowed))
        if fmt is ImageFormat.HEIF:
            _register_heif()
        if fmt is ImageFormat.PNG:
            _check_png_chunks(stream, max_frames=self._max_frames)
        elif fmt is ImageFormat.JPEG:
            _check_jpeg_segments(stream)
        try:
            with warnings.catch_warnings():
                # Pillow only warns between MAX_IMAGE_PIXELS and twice that: fatal here, for
                # this call, without loosening the process-wide limit.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return self._process(stream, fmt)
        except DomainError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageRejected("The image has too many pixels.", code="image_too_large") from exc
        except MemoryError:
            raise  # the server ran short; reporting the upload as corrupt would be a lie
        except Exception as exc:
            # Whatever a decoder raises (OSError, SyntaxError, ValueError, EOFError, struct
            # errors...). UnidentifiedImageError lands here too: the magic bytes named a format
            # but its plugin could not make sense of the header, so the file is broken.
            raise ImageRejected(
                f"The {fmt.name} image is corrupt or truncated.", code="corrupt_image"
            ) from exc

    def decode_cost(self, source: BinaryIO) -> int | None:
        """Pixels the decode will produce (JPEGs at the reduced scale they are decoded at),
        from the header in the first 64 KiB; None when it is not there or not readable."""
        source.seek(0)
        head = source.read(_COST_PREFIX_BYTES)
        source.seek(0)
        fmt = detect_format(head[:HEADER_BYTES])
        # A GIF's cost is walking its blocks (in Python, ~0.5 s per MiB of extension blocks),
        # not its pixels; HEIF needs its plugin loaded. Neither can be told from a prefix.
        if fmt is None or fmt in (ImageFormat.GIF, ImageFormat.HEIF):
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a bomb is refused by process(), not here
                with Image.open(io.BytesIO(head), formats=[_PILLOW_FORMAT[fmt]]) as im:
                    if fmt is ImageFormat.JPEG:
                        im.draft("RGB", (self._display_max_side, self._display_max_side))
                    return int(im.width * im.height)
        except Exception:  # whatever a truncated or hostile header makes the parser raise
            return None

    def _process(self, stream: BinaryIO, fmt: ImageFormat) -> ProcessedImage:
        # Only the plugin of the sniffed format may parse the bytes: no polyglot surprises.
        with Image.open(stream, formats=[_PILLOW_FORMAT[fmt]]) as im:
            self._check_header(im)
            width, height = im.size
            completeness.check_declared_size(stream, fmt)
            fitted = self._fit_with_vips(stream, im) if fmt is ImageFormat.JPEG else None
            if fitted is None:
                if fmt is ImageFormat.JPEG:
                    # Lets libjpeg decode at 1/2, 1/4 or 1/8 scale while each side stays at
                    # least the display size: a fraction of the memory and time of a full decode.
                    im.draft("RGB", (self._display_max_side, self._display_max_side))
                im.load()  # full decode of the first frame: truncated or corrupt data fails here
                completeness.check_ends(stream, fmt)
                # The decoded pixels are the only full-size buffer: conversion and resampling
                # work on stripes of them.
                fitted = _fit_in_stripes(im, self._display_max_side)
            orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
            if orientation in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            # Orientation is applied to the (small) display image.
            display = _drop_opaque_alpha(_oriented(fitted, orientation))
            thumbnail = _fit(display, self._thumbnail_max_side)  # cheaper than from the full
            display_bytes, display_mime = _encode(display)
            thumbnail_bytes, thumbnail_mime = _encode(thumbnail)
        return ProcessedImage(
            format=fmt,
            width=width,
            height=height,
            display=display_bytes,
            display_mime=display_mime,
            thumbnail=thumbnail_bytes,
            thumbnail_mime=thumbnail_mime,
        )

    def _fit_with_vips(self, stream: BinaryIO, im: Image.Image) -> Image.Image | None:
        """A large YCbCr or greyscale JPEG's display pixels from libvips (``vips_resample``):
        ~0.4x the CPU of the Pillow path. None where the Pillow path decides: JPEGs within the
        display size or over 4x it, CMYK ones, and any file libvips finds fault with (Pillow
        then accepts or refuses it as it always has), a file that stops before its end marker
        included: truncated ones are refused by the Pillow path's reduced decode, and one whose
        scans are whole but whose end marker is missing is accepted, as it always was."""
        if not self._vips_jpeg or im.mode not in ("RGB", "L"):
            return None
        size = _fitted_size(im.size, self._display_max_side)
        if size == im.size or not vips_resample.resamples(im.size, size):
            return None
        if not jpeg_end.ends_complete(stream):
            return None  # libvips is not asked: the Pillow path's verdict stands
        fitted = vips_resample.fit(stream, mode=im.mode, size=im.size, out=size)
        return None if fitted is None else _to_mode(fitted, "RGB")

    def _check_header(self, im: Image.Image) -> None:
        """Limits known from the header alone, enforced before any pixel is decoded."""
        pixels = im.width * im.height
        if pixels > self._max_pixels:
            raise ImageRejected(
                f"The image has {pixels} pixels; at most {self._max_pixels} are accepted.",
                code="image_too_large",
            )
        # Counting GIF frames walks their headers without decoding them; others read a field.
        frames = int(getattr(im, "n_frames", 1))
        if frames > self._max_frames:
            raise ImageRejected(
                f"The image has {frames} frames; at most {self._max_frames} are accepted.",
                code="too_many_frames",
            )


def _check_png_chunks(stream: BinaryIO, *, max_frames: int) -> None:
    """Walk the chunk headers (8 bytes each, bodies skipped) before Pillow parses anything:
    a chunk flood is refused in a few milliseconds instead of seconds of parsing."""
    size = stream.seek(0, io.SEEK_END)
    stream.seek(len(_PNG_SIGNATURE))
    per_size = PNG_DATA_CHUNKS_PER_KIB * (size // 1024)
    data_limit = MAX_PNG_METADATA_CHUNKS + 2 * max_frames + per_size
    metadata = data = 0
    while True:
        header = stream.read(8)
        if len(header) < 8:
            return  # truncated: Pillow reports it as corrupt
        kind = header[4:]
        if kind == b"IEND":
            return
        if kind in _PNG_DATA_CHUNKS:
            data += 1
        elif kind not in (b"IHDR", b"PLTE"):
            metadata += 1
        if metadata > MAX_PNG_METADATA_CHUNKS or data > data_limit:
            raise ImageRejected(
                f"The PNG has more chunks than an image needs (at most "
                f"{MAX_PNG_METADATA_CHUNKS} metadata chunks and {data_limit} data chunks).",
                code="too_many_chunks",
            )
        stream.seek(int.from_bytes(header[:4], "big") + 4, io.SEEK_CUR)  # body and CRC


def _check_jpeg_segments(stream: BinaryIO) -> None:
    """Pillow reads the segments before the first scan in Python, byte by byte between them:
    5 MB of empty comment segments took 15 s. Walk them (bodies skipped) and refuse a file
    with more than ``MAX_JPEG_SEGMENTS`` of them or ``MAX_JPEG_STRAY_BYTES`` between them."""
    stream.seek(2)  # after SOI
    segments = stray = 0
    while True:
        byte = stream.read(1)
        while byte and byte != b"\xff":  # bytes outside any segment: libjpeg skips them
            stray += 1
            if stray > MAX_JPEG_STRAY_BYTES:
                raise _too_many("JPEG", f"{MAX_JPEG_STRAY_BYTES} stray bytes between segments")
            byte = stream.read(1)
        marker = stream.read(1)
        while marker == b"\xff":  # fill bytes before a marker
            stray += 1
            marker = stream.read(1)
        if not marker or marker[0] in _JPEG_END_OF_HEADERS:
            return  # truncated (Pillow reports it) or the headers are over
        segments += 1
        if segments > MAX_JPEG_SEGMENTS or stray > MAX_JPEG_STRAY_BYTES:
            raise _too_many("JPEG", f"{MAX_JPEG_SEGMENTS} segments before the image data")
        if marker[0] not in _JPEG_STANDALONE:
            length = int.from_bytes(stream.read(2), "big")
            stream.seek(max(0, length - 2), io.SEEK_CUR)


def _too_many(fmt: str, limit: str) -> ImageRejected:
    return ImageRejected(
        f"The {fmt} has more parts than an image needs (at most {limit}).",
        code="too_many_chunks",
    )


def _unsupported_message(fmt: ImageFormat | None, allowed: frozenset[ImageFormat]) -> str:
    accepted = ", ".join(sorted(f.name for f in allowed)) or "none"
    if fmt is None:
        return f"The data is not an image in an accepted format (accepted: {accepted})."
    return f"{fmt.name} images are not accepted here (accepted: {accepted})."


def _variant_mode(im: Image.Image) -> str:
    """The mode variants are encoded from: RGBA if the image has transparency, else RGB."""
    return "RGBA" if im.mode in _ALPHA_MODES or "transparency" in im.info else "RGB"


def _to_mode(im: Image.Image, target: str) -> Image.Image:
    if im.mode == "I" or im.mode.startswith("I;16"):
        # 16-bit grey: Pillow's plain conversion clips at 255 (near-white); scale down instead.
        im = im.point(lambda value: value / 256, "L")
    # convert() applies palettes, tRNS colour keys and CMYK/YCbCr maths.
    return im if im.mode == target else im.convert(target)


def _fit_in_stripes(im: Image.Image, max_side: int) -> Image.Image:
    """``im`` in its variant mode, scaled down to fit ``max_side``, without a second
    full-size buffer: converting a whole 7000 x 7000 RGBA image, and the premultiplied copy
    Pillow makes to resize RGBA, each cost as much as the decode (~196 MB; peak was ~450 MB).
    Each stripe of output rows is resampled from a crop of just the source rows it needs
    (plus the Lanczos support), so the result equals one resize of the whole image."""
    target = _variant_mode(im)
    if max(im.size) <= max_side:
        return _to_mode(im, target)
    width, height = im.size
    out_w, out_h = _fitted_size(im.size, max_side)
    step = height / out_h  # source rows per output row
    margin = math.ceil(3 * step) + 2  # Lanczos reaches 3 output pixels either side
    out = Image.new(target, (out_w, out_h))
    for top in range(0, out_h, _STRIPE_ROWS):
        bottom = min(out_h, top + _STRIPE_ROWS)
        y0, y1 = top * step, bottom * step
        crop_top = max(0, math.floor(y0) - margin)
        crop_bottom = min(height, math.ceil(y1) + margin)
        stripe = _to_mode(im.crop((0, crop_top, width, crop_bottom)), target)
        box = (0.0, y0 - crop_top, float(width), y1 - crop_top)
        out.paste(stripe.resize((out_w, bottom - top), Image.Resampling.LANCZOS, box=box), (0, top))
    return out


def _fitted_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled down so the long side is ``max_side`` (never enlarged)."""
    width, height = size
    if max(width, height) <= max_side:
        return size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _oriented(im: Image.Image, orientation: int) -> Image.Image:
    """``im`` turned as its EXIF orientation says (what ``ImageOps.exif_transpose`` does)."""
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return im if method is None else im.transpose(method)


def _drop_opaque_alpha(im: Image.Image) -> Image.Image:
    """An alpha channel with nothing transparent in it is not worth a (much larger) PNG."""
    if im.mode == "RGBA" and im.getchannel("A").getextrema()[0] == 255:
        return im.convert("RGB")
    return im


def _fit(im: Image.Image, max_side: int) -> Image.Image:
    """Scale down so the long side is at most ``max_side``: aspect kept, never enlarged."""
    size = _fitted_size(im.size, max_side)
    if size == im.size:
        return im
    # reducing_gap: a cheap integer box reduction first, then Lanczos for the last step;
    # visually the same as Lanczos all the way, several times faster on big photos.
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(im: Image.Image) -> tuple[bytes, str]:
    """Re-encode from pixels only: JPEG without alpha, PNG with it; no metadata written."""
    im.info = {}  # savers pick comment, icc_profile and transparency up from info otherwise
    buffer = io.BytesIO()
    if im.mode == "RGBA":
        im.save(buffer, format="PNG")
        return buffer.getvalue(), ImageFormat.PNG.mime
    im.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue(), ImageFormat.JPEG.mime
