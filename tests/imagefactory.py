"""Test images generated in memory: no binary fixtures are shipped.

Most images are four solid quadrants (``QUADRANTS``) so that orientation, cropping and frame
selection can be checked by sampling a pixel colour, even after lossy re-encoding.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import pillow_heif
from PIL import ExifTags, Image, ImageCms, ImageDraw

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)
QUADRANTS = {"top_left": RED, "top_right": GREEN, "bottom_left": BLUE, "bottom_right": YELLOW}
"""Colour of each quadrant of ``quadrants(w, h)`` as stored (before any EXIF orientation)."""

GPS_LATITUDE = (52.0, 31.0, 12.5)
COMMENT = b"secret comment from the camera"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="Secret Person"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def quadrants(w: int, h: int, mode: str = "RGB") -> Image.Image:
    """A ``w`` x ``h`` image of four solid quadrants, colours as in ``QUADRANTS``."""
    im = Image.new("RGB", (w, h), RED)
    im.paste(GREEN, (w // 2, 0, w, h // 2))
    im.paste(BLUE, (0, h // 2, w // 2, h))
    im.paste(YELLOW, (w // 2, h // 2, w, h))
    return im if mode == "RGB" else im.convert(mode)


def scene(seed: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """Sixty overlapping coloured rectangles: edges everywhere, like a busy photo (the dataset
    check finds it sharp and well exposed; other seeds hash far from it)."""
    rng = random.Random(seed)
    picture = Image.new("RGB", size, (120, 130, 140))
    draw = ImageDraw.Draw(picture)
    for _ in range(60):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(20, 200), rng.randrange(20, 200)
        draw.rectangle((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    return picture


def encoded(picture: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """``picture`` encoded (JPEG at quality 90 unless told otherwise)."""
    if fmt == "JPEG":
        params.setdefault("quality", 90)
    return _save(picture, fmt, **params)


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(
    w: int,
    h: int,
    exif_orientation: int | None = None,
    with_gps: bool = False,
    *,
    with_metadata: bool = False,
    mode: str = "RGB",
) -> bytes:
    """A quadrant JPEG, optionally with an EXIF orientation tag and a GPS position.

    ``with_metadata`` adds an sRGB ICC profile, an XMP packet and a comment, all of which
    derived variants must drop.
    """
    exif = Image.Exif()
    if exif_orientation is not None:
        exif[ExifTags.Base.Orientation] = exif_orientation
    if with_gps:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: GPS_LATITUDE,
            ExifTags.GPS.GPSLongitudeRef: "E",
            ExifTags.GPS.GPSLongitude: (13.0, 24.0, 36.0),
        }
    params: dict[str, object] = {"quality": 95, "exif": exif.tobytes()}
    if with_metadata:
        params["icc_profile"] = srgb_icc_profile()
        params["xmp"] = XMP
        params["comment"] = COMMENT
    return _save(quadrants(w, h, mode), "JPEG", **params)


def srgb_icc_profile() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return profile.tobytes()


def png(w: int, h: int, alpha: bool = False) -> bytes:
    """A quadrant PNG; with ``alpha`` the bottom-right quadrant is fully transparent."""
    im = quadrants(w, h)
    if alpha:
        im.putalpha(255)
        im.paste((0, 0, 0, 0), (w // 2, h // 2, w, h))
    return _save(im, "PNG")


def png_opaque_rgba(w: int, h: int) -> bytes:
    """An RGBA PNG whose alpha channel is 255 everywhere."""
    im = quadrants(w, h)
    im.putalpha(255)
    return _save(im, "PNG")


def png_grey16(w: int, h: int, value: int) -> bytes:
    """A 16-bit greyscale PNG filled with ``value`` (0..65535)."""
    return _save(Image.new("I;16", (w, h), value), "PNG")


def webp(w: int, h: int) -> bytes:
    return _save(quadrants(w, h), "WEBP", quality=90)


def heic(w: int, h: int) -> bytes:
    """A quadrant HEIC, encoded by pillow-heif without registering its Pillow plugin."""
    buffer = io.BytesIO()
    pillow_heif.from_pillow(quadrants(w, h)).save(buffer, quality=90)
    return buffer.getvalue()


def bmp(w: int, h: int) -> bytes:
    return _save(quadrants(w, h), "BMP")


def gif(w: int, h: int) -> bytes:
    return _save(quadrants(w, h), "GIF")


ANIMATION_COLOURS = [RED, GREEN, BLUE, YELLOW, (255, 0, 255), (0, 255, 255)]


def animated_gif(w: int, h: int, frames: int) -> bytes:
    """``frames`` solid frames, cycling through ``ANIMATION_COLOURS`` (the first is red)."""
    images = [
        Image.new("RGB", (w, h), ANIMATION_COLOURS[i % len(ANIMATION_COLOURS)])
        for i in range(frames)
    ]
    return _save(images[0], "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)


def truncated_jpeg() -> bytes:
    """A valid JPEG header followed by only part of its scan data."""
    gradient = Image.linear_gradient("L").resize((512, 512))
    im = Image.merge("RGB", (gradient, gradient.rotate(90), gradient.rotate(180)))
    data = _save(im, "JPEG", quality=95)
    return data[: len(data) * 6 // 10]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pixel_bomb_png(w: int, h: int) -> bytes:
    """A few hundred bytes whose valid IHDR declares ``w`` x ``h`` 8-bit grey pixels.

    The IDAT holds only a handful of rows, so nothing large is ever allocated here; a decoder
    that trusted the header would try to allocate ``w * h`` bytes.
    """
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (min(w, 1024) + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def not_an_image() -> bytes:
    return b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def svg() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<rect width="64" height="64" fill="red"/></svg>\n'
    )


def png_chunk_flood(kind: bytes, data: bytes = b"", total: int = 1024 * 1024) -> bytes:
    """A valid 16 x 16 PNG with ``total`` bytes of ``kind`` chunks right after IHDR (empty
    ones by default): every chunk is legal, their number is the attack."""
    good = png(16, 16)
    ihdr_end = 8 + 25  # signature, then IHDR: length, type, 13 bytes, CRC
    one = _png_chunk(kind, data)
    return good[:ihdr_end] + one * (total // len(one)) + good[ihdr_end:]


def jpeg_segment_flood(segment: bytes, total: int = 1024 * 1024) -> bytes:
    """A valid 16 x 16 JPEG with ``total`` bytes of ``segment`` repeated after its first
    segment (so it still starts with the JPEG signature)."""
    good = jpeg(16, 16)
    first_end = 4 + int.from_bytes(good[4:6], "big")  # SOI, marker, then the length
    return good[:first_end] + segment * (total // len(segment)) + good[first_end:]
