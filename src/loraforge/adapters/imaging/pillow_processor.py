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
import warnings
from typing import BinaryIO

from PIL import ExifTags, Image, ImageOps

from loraforge.adapters.imaging import completeness
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
    ) -> None:
        if min(max_pixels, max_frames, display_max_side, thumbnail_max_side) < 1:
            raise ValueError("image limits must be positive")
        self._max_pixels = max_pixels
        self._max_frames = max_frames
        self._display_max_side = display_max_side
        self._thumbnail_max_side = thumbnail_max_side

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

    def _process(self, stream: BinaryIO, fmt: ImageFormat) -> ProcessedImage:
        # Only the plugin of the sniffed format may parse the bytes: no polyglot surprises.
        with Image.open(stream, formats=[_PILLOW_FORMAT[fmt]]) as im:
            self._check_header(im)
            width, height = im.size
            if fmt is ImageFormat.JPEG:
                # Lets libjpeg decode at 1/2, 1/4 or 1/8 scale while each side stays at least
                # the display size: a fraction of the memory and time of a full decode.
                im.draft("RGB", (self._display_max_side, self._display_max_side))
            completeness.check_declared_size(stream, fmt)
            im.load()  # full decode of the first frame: truncated or corrupt data fails here
            completeness.check_ends(stream, fmt)
            # Orientation before resizing so the display's long side is the one viewers see.
            orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
            ImageOps.exif_transpose(im, in_place=True)
            if orientation in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            display = _drop_opaque_alpha(_fit(_to_rgb_or_rgba(im), self._display_max_side))
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


def _unsupported_message(fmt: ImageFormat | None, allowed: frozenset[ImageFormat]) -> str:
    accepted = ", ".join(sorted(f.name for f in allowed)) or "none"
    if fmt is None:
        return f"The data is not an image in an accepted format (accepted: {accepted})."
    return f"{fmt.name} images are not accepted here (accepted: {accepted})."


def _to_rgb_or_rgba(im: Image.Image) -> Image.Image:
    """The image in the mode variants are encoded from: RGBA if it has transparency, else RGB."""
    if im.mode == "I" or im.mode.startswith("I;16"):
        # 16-bit grey: Pillow's plain conversion clips at 255 (near-white); scale down instead.
        im = im.point(lambda value: value / 256, "L")
    has_alpha = im.mode in _ALPHA_MODES or "transparency" in im.info
    target = "RGBA" if has_alpha else "RGB"
    # convert() applies palettes, tRNS colour keys and CMYK/YCbCr maths.
    return im if im.mode == target else im.convert(target)


def _drop_opaque_alpha(im: Image.Image) -> Image.Image:
    """An alpha channel with nothing transparent in it is not worth a (much larger) PNG."""
    if im.mode == "RGBA" and im.getchannel("A").getextrema()[0] == 255:
        return im.convert("RGB")
    return im


def _fit(im: Image.Image, max_side: int) -> Image.Image:
    """Scale down so the long side is at most ``max_side``: aspect kept, never enlarged."""
    long_side = max(im.size)
    if long_side <= max_side:
        return im
    scale = max_side / long_side
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
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
