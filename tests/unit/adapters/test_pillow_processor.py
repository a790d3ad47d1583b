"""The Pillow image pipeline: sniffing, limits, decoding, orientation and clean variants."""

from __future__ import annotations

import io
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from PIL import Image, JpegImagePlugin

from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor, detect_format
from loraforge.domain.entities import ALL_FORMATS, ImageFormat, ProcessedImage
from loraforge.domain.errors import ImageRejected, UnsupportedFormat
from tests import imagefactory as factory

Colour = tuple[int, int, int]
RGB = frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP})


def make(**limits: int) -> PillowImageProcessor:
    settings: dict[str, Any] = {"max_pixels": 50_000_000, "max_frames": 1000} | limits
    return PillowImageProcessor(**settings)


def process(
    data: bytes,
    allowed: frozenset[ImageFormat] = ALL_FORMATS,
    processor: PillowImageProcessor | None = None,
) -> ProcessedImage:
    return (processor or make()).process(io.BytesIO(data), allowed=allowed)


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def colour_at(im: Image.Image, x: int, y: int) -> Colour:
    r, g, b = im.convert("RGB").getpixel((x, y))  # type: ignore[misc]
    return (r, g, b)


def assert_colour(actual: Colour, expected: Colour, tolerance: int = 40) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (
        f"{actual} is not close to {expected}"
    )


def assert_quadrants(im: Image.Image, tl: Colour, tr: Colour, bl: Colour, br: Colour) -> None:
    """Sample the middle of each quadrant, away from edges blurred by resampling."""
    w, h = im.size
    assert_colour(colour_at(im, w // 4, h // 4), tl)
    assert_colour(colour_at(im, 3 * w // 4, h // 4), tr)
    assert_colour(colour_at(im, w // 4, 3 * h // 4), bl)
    assert_colour(colour_at(im, 3 * w // 4, 3 * h // 4), br)


Q = factory.QUADRANTS
FORMATS: list[tuple[Callable[[int, int], bytes], ImageFormat]] = [
    (factory.jpeg, ImageFormat.JPEG),
    (factory.png, ImageFormat.PNG),
    (factory.webp, ImageFormat.WEBP),
    (factory.heic, ImageFormat.HEIF),
    (factory.bmp, ImageFormat.BMP),
    (factory.gif, ImageFormat.GIF),
]


# --- accepted formats -----------------------------------------------------------------------


@pytest.mark.parametrize(("make_image", "fmt"), FORMATS, ids=[f.value for _, f in FORMATS])
def test_every_accepted_format_is_decoded_and_derived(
    make_image: Callable[[int, int], bytes], fmt: ImageFormat
) -> None:
    result = process(make_image(64, 48), allowed=frozenset({fmt}))

    assert (result.format, result.width, result.height) == (fmt, 64, 48)
    assert (result.display_mime, result.thumbnail_mime) == ("image/jpeg", "image/jpeg")
    display = decode(result.display)
    assert (display.format, display.size, display.mode) == ("JPEG", (64, 48), "RGB")
    assert_quadrants(display, Q["top_left"], Q["top_right"], Q["bottom_left"], Q["bottom_right"])
    assert decode(result.thumbnail).size == (64, 48)  # small images are never enlarged


@pytest.mark.parametrize(("make_image", "fmt"), FORMATS, ids=[f.value for _, f in FORMATS])
def test_format_is_detected_from_magic_bytes(
    make_image: Callable[[int, int], bytes], fmt: ImageFormat
) -> None:
    assert detect_format(make_image(16, 16)[:64]) is fmt


def test_format_comes_from_the_bytes_not_the_file_name(tmp_path: Path) -> None:
    disguised = tmp_path / "holiday.png"
    disguised.write_bytes(factory.jpeg(32, 32))

    with disguised.open("rb") as source:
        result = make().process(source, allowed=ALL_FORMATS)
    assert result.format is ImageFormat.JPEG

    with disguised.open("rb") as source, pytest.raises(UnsupportedFormat):
        make().process(source, allowed=frozenset({ImageFormat.PNG}))


def test_allowed_narrows_the_accepted_formats_and_the_message_lists_them() -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        process(factory.bmp(32, 32), allowed=RGB)

    assert caught.value.code == "unsupported_format"
    assert "BMP" in caught.value.message
    assert all(name in caught.value.message for name in ("JPEG", "PNG", "WEBP"))
    assert process(factory.bmp(32, 32), allowed=frozenset({ImageFormat.BMP})).width == 32


@pytest.mark.parametrize(
    "data",
    [
        factory.svg(),
        factory.not_an_image(),
        b"just some text, certainly no picture",
        b"BM but then only text follows, no bitmap header at all",
        b"",
    ],
    ids=["svg", "pdf", "text", "bm-text", "empty"],
)
def test_non_images_are_an_unsupported_format(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        process(data)
    assert "accepted" in caught.value.message


def test_a_non_seekable_stream_is_accepted() -> None:
    class OneWay(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            return self._inner.readinto(buffer)

    stream: BinaryIO = io.BufferedReader(OneWay(factory.png(20, 10)))
    assert not stream.seekable()
    result = make().process(stream, allowed=ALL_FORMATS)
    assert (result.format, result.width, result.height) == (ImageFormat.PNG, 20, 10)


# --- format detection details ---------------------------------------------------------------


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (len(body) + 4).to_bytes(4, "big") + body + b"\x00\x00\x00\x08free"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (_ftyp(b"heic", b"mif1", b"heic"), ImageFormat.HEIF),
        (_ftyp(b"mif1", b"heic", b"miaf"), ImageFormat.HEIF),
        (_ftyp(b"msf1", b"hevc"), ImageFormat.HEIF),
        (_ftyp(b"heix"), ImageFormat.HEIF),
        (_ftyp(b"avif", b"mif1", b"miaf"), None),
        (_ftyp(b"mif1", b"avif"), None),
        (_ftyp(b"isom", b"mp41", b"avc1"), None),  # an MP4 video
        (b"\x00\x00\x00\x0cftypheic", None),  # box too short to be an ftyp
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"GIF90a", None),
        (b"\xff\xd8", None),
    ],
)
def test_detect_format_edge_cases(head: bytes, expected: ImageFormat | None) -> None:
    assert detect_format(head) is expected


# --- broken and hostile input ---------------------------------------------------------------


def test_a_truncated_jpeg_is_rejected_as_corrupt() -> None:
    with pytest.raises(ImageRejected) as caught:
        process(factory.truncated_jpeg())
    assert caught.value.code == "corrupt_image"


def test_garbage_after_a_valid_signature_is_rejected_as_corrupt() -> None:
    with pytest.raises(ImageRejected) as caught:
        process(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    assert caught.value.code == "corrupt_image"


@pytest.mark.parametrize(
    ("width", "height", "max_pixels"),
    [
        (100_000, 100_000, 50_000_000),  # beyond Pillow's own hard limit
        (9_000, 9_000, 50_000_000),  # under Pillow's limits, over ours
        (10_000, 10_000, 1_000_000_000),  # in Pillow's warning band: the warning is fatal
    ],
)
def test_a_pixel_bomb_is_rejected_before_decoding(width: int, height: int, max_pixels: int) -> None:
    bomb = factory.pixel_bomb_png(width, height)
    assert len(bomb) < 1000

    with warnings.catch_warnings():
        # As in production, where nobody made the warning an error: the processor must.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageRejected) as caught:
            process(bomb, processor=make(max_pixels=max_pixels))
    # Decoding the few rows present would have failed as "corrupt_image": this code shows the
    # header alone decided.
    assert caught.value.code == "image_too_large"


def test_the_pixel_cap_counts_width_times_height() -> None:
    data = factory.png(100, 50)
    assert process(data, processor=make(max_pixels=5000)).width == 100
    with pytest.raises(ImageRejected) as caught:
        process(data, processor=make(max_pixels=4999))
    assert caught.value.code == "image_too_large"
    assert "4999" in caught.value.message


def test_processing_leaves_pillow_limits_and_warning_filters_alone() -> None:
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    with pytest.raises(ImageRejected):
        process(factory.pixel_bomb_png(10_000, 10_000), processor=make(max_pixels=10**9))
    assert limit == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == filters


def test_mangled_images_only_ever_raise_domain_errors() -> None:
    """Truncations and byte flips of every format: a result or a domain error, nothing else."""
    rng = random.Random(20240601)
    for make_image, _ in FORMATS:
        original = make_image(48, 32)
        for _ in range(15):
            data = bytearray(original)
            if rng.random() < 0.5:
                del data[rng.randrange(8, len(data)) :]
            else:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(8, len(data))] = rng.randrange(256)
            try:
                result = process(bytes(data))
            except (ImageRejected, UnsupportedFormat):
                continue  # anything else (a Pillow exception) escapes and fails the test
            assert decode(result.display).size[0] >= 1


# --- frames ---------------------------------------------------------------------------------


def test_an_animated_gif_gives_its_first_frame() -> None:
    result = process(factory.animated_gif(40, 30, frames=3), processor=make(max_frames=3))

    assert (result.format, result.width, result.height) == (ImageFormat.GIF, 40, 30)
    display = decode(result.display)
    assert_colour(colour_at(display, 20, 15), factory.ANIMATION_COLOURS[0])


def test_too_many_frames_are_rejected() -> None:
    with pytest.raises(ImageRejected) as caught:
        process(factory.animated_gif(40, 30, frames=3), processor=make(max_frames=2))
    assert caught.value.code == "too_many_frames"


# --- orientation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "size", "corners"),
    [
        (1, (80, 40), ("top_left", "top_right", "bottom_left", "bottom_right")),
        (3, (80, 40), ("bottom_right", "bottom_left", "top_right", "top_left")),
        # 6: the camera was turned clockwise; the viewer rotates the stored image 90° clockwise.
        (6, (40, 80), ("bottom_left", "top_left", "bottom_right", "top_right")),
        (8, (40, 80), ("top_right", "bottom_right", "top_left", "bottom_left")),
    ],
)
def test_exif_orientation_is_applied_and_reported(
    orientation: int, size: tuple[int, int], corners: tuple[str, str, str, str]
) -> None:
    result = process(factory.jpeg(80, 40, exif_orientation=orientation))

    assert (result.width, result.height) == size
    for variant in (result.display, result.thumbnail):
        im = decode(variant)
        assert im.size == size
        assert_quadrants(im, *(Q[corner] for corner in corners))
        assert im.getexif().get(0x0112) is None  # not applied a second time by viewers


def test_a_rotated_large_jpeg_reports_the_original_size_as_viewed() -> None:
    result = process(factory.jpeg(4200, 2400, exif_orientation=6))

    assert (result.width, result.height) == (2400, 4200)
    assert decode(result.display).size == (1170, 2048)
    assert decode(result.thumbnail).size == (146, 256)


# --- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "display", "thumbnail"),
    [
        ((4000, 3000), (2048, 1536), (256, 192)),
        ((3000, 4000), (1536, 2048), (192, 256)),
        ((2048, 100), (2048, 100), (256, 12)),
    ],
)
def test_variants_fit_their_bounds_and_keep_the_aspect(
    size: tuple[int, int], display: tuple[int, int], thumbnail: tuple[int, int]
) -> None:
    result = process(factory.jpeg(*size))

    assert (result.width, result.height) == size
    display_im, thumbnail_im = decode(result.display), decode(result.thumbnail)
    assert display_im.size == display
    assert thumbnail_im.size == thumbnail
    assert_quadrants(display_im, Q["top_left"], Q["top_right"], Q["bottom_left"], Q["bottom_right"])


def test_configured_bounds_are_used() -> None:
    processor = make(display_max_side=100, thumbnail_max_side=10)
    result = process(factory.png(400, 200), processor=processor)
    assert decode(result.display).size == (100, 50)
    assert decode(result.thumbnail).size == (10, 5)


def test_large_jpegs_on_the_pillow_path_are_draft_decoded_at_reduced_scale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Pillow path (CMYK JPEGs, files libvips finds fault with, ``vips_jpeg=False``)."""
    decoded_sizes: list[tuple[int, int]] = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(
        im: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None
    ) -> tuple[str, tuple[int, int, float, float]] | None:
        outcome = original_draft(im, mode, size)
        decoded_sizes.append(im.size)
        return outcome

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    pillow_only = PillowImageProcessor(max_pixels=50_000_000, max_frames=1000, vips_jpeg=False)
    result = process(factory.jpeg(4200, 4200), processor=pillow_only)

    assert decoded_sizes == [(2100, 2100)]  # libjpeg decoded at half scale
    assert (result.width, result.height) == (4200, 4200)  # but the original size is reported
    assert decode(result.display).size == (2048, 2048)


def test_constructor_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        make(max_pixels=0)
    with pytest.raises(ValueError, match="positive"):
        make(thumbnail_max_side=0)


# --- metadata -------------------------------------------------------------------------------


def test_derived_variants_carry_no_metadata() -> None:
    source = factory.jpeg(64, 48, exif_orientation=6, with_gps=True, with_metadata=True)
    original = decode(source)  # make sure there was something to strip
    assert original.getexif().get_ifd(0x8825)  # GPS IFD
    assert {"exif", "icc_profile", "xmp", "comment"} <= set(original.info)

    result = process(source)

    for variant in (result.display, result.thumbnail):
        im = decode(variant)
        assert len(im.getexif()) == 0
        assert not {"exif", "icc_profile", "xmp", "comment"} & set(im.info)
        for marker in (b"Exif\x00\x00", b"ICC_PROFILE", b"http://ns.adobe.com/xap", b"Secret"):
            assert marker not in variant
        assert factory.COMMENT not in variant


# --- modes and transparency -----------------------------------------------------------------


def test_a_png_with_transparency_gives_png_variants() -> None:
    result = process(factory.png(64, 48, alpha=True))

    assert (result.display_mime, result.thumbnail_mime) == ("image/png", "image/png")
    for variant in (result.display, result.thumbnail):
        im = decode(variant)
        assert (im.format, im.mode) == ("PNG", "RGBA")
        w, h = im.size
        assert im.getpixel((3 * w // 4, 3 * h // 4))[3] == 0  # type: ignore[index]
        assert im.getpixel((w // 4, h // 4)) == (*factory.RED, 255)
        assert not {"exif", "icc_profile"} & set(im.info)


def test_an_alpha_channel_without_transparency_gives_jpeg_variants() -> None:
    result = process(factory.png_opaque_rgba(64, 48))
    assert (result.display_mime, result.thumbnail_mime) == ("image/jpeg", "image/jpeg")
    assert decode(result.display).mode == "RGB"


def test_a_16_bit_grey_png_is_scaled_not_clipped() -> None:
    result = process(factory.png_grey16(32, 32, 0x8000))
    assert_colour(colour_at(decode(result.display), 16, 16), (128, 128, 128), tolerance=3)


def test_a_cmyk_jpeg_is_converted_to_rgb() -> None:
    result = process(factory.jpeg(64, 48, mode="CMYK"))

    display = decode(result.display)
    assert display.mode == "RGB"
    assert_quadrants(display, Q["top_left"], Q["top_right"], Q["bottom_left"], Q["bottom_right"])


# --- chunk floods -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data"),
    [(b"abCd", b""), (b"tEXt", b"k\x00v"), (b"zTXt", b"k\x00\x00x\x9c\x03\x00\x00\x00\x00\x01")],
    ids=["unknown", "text", "compressed-text"],
)
def test_a_flood_of_metadata_chunks_is_refused_before_parsing(kind: bytes, data: bytes) -> None:
    flood = factory.png_chunk_flood(kind, data)  # 1 MiB: ~80,000 chunks, each legal

    with pytest.raises(ImageRejected) as caught:
        process(flood)
    assert caught.value.code == "too_many_chunks"


def test_a_flood_of_empty_data_chunks_is_refused() -> None:
    with pytest.raises(ImageRejected) as caught:
        process(factory.png_chunk_flood(b"IDAT"))
    assert caught.value.code == "too_many_chunks"


def test_a_png_with_some_metadata_and_many_frames_is_accepted() -> None:
    frames = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(300)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])  # 300 fcTL + fdAT
    with_text = factory.png_chunk_flood(b"tEXt", b"k\x00v", total=20 * 15)  # 20 text chunks

    assert process(buffer.getvalue()).format is ImageFormat.PNG
    assert process(with_text).width == 16


@pytest.mark.parametrize(
    "segment",
    [b"\xff\xfe\x00\x02", b"\xff\xe5\x00\x02", b"\x00"],
    ids=["empty-comments", "empty-app5", "stray-bytes"],
)
def test_a_jpeg_flood_before_the_image_data_is_refused_before_parsing(segment: bytes) -> None:
    # Pillow walks these in Python: 5 MB of empty comments took 15 s to parse.
    with pytest.raises(ImageRejected) as caught:
        process(factory.jpeg_segment_flood(segment))
    assert caught.value.code == "too_many_chunks"


def test_decode_cost_reads_the_header_only() -> None:
    """What the decode-slot shares weigh an upload by, before any pixel is decoded."""
    p = make()
    big = io.BytesIO()
    Image.new("RGBA", (7000, 7000)).save(big, "PNG")  # ~190 KB, 49 MP to decode
    assert p.decode_cost(big) == 49_000_000
    assert big.tell() == 0  # left at the start for the decode
    photo = io.BytesIO()
    Image.new("RGB", (6000, 4500)).save(photo, "JPEG")
    assert p.decode_cost(photo) == 3000 * 2250  # JPEGs decode at the scale the display needs
    assert p.decode_cost(io.BytesIO(factory.webp(30, 20))) == 600
    assert p.decode_cost(io.BytesIO(b"not an image at all")) is None
    # A GIF costs its blocks, not its pixels: never counted as cheap.
    assert p.decode_cost(io.BytesIO(factory.gif(30, 20))) is None
    assert p.decode_cost(io.BytesIO(factory.png(30, 20)[:20])) is None  # cut in the header
