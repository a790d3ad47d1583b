"""The libvips path for large JPEGs (``vips_resample``, ``jpeg_end``) against the Pillow path.

Each test compares what ``PillowImageProcessor`` makes with libvips (the default) with what it
makes on Pillow alone (``vips_jpeg=False``): the same sizes, orientation and colours, a display
variant within 40 dB PSNR, and the same accept/reject verdict on broken files.
"""

from __future__ import annotations

import io
import random
import time
from typing import BinaryIO

import pytest
from PIL import Image, JpegImagePlugin

from loraforge.adapters.imaging import jpeg_end, vips_resample
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.domain.entities import ALL_FORMATS, ProcessedImage
from loraforge.domain.errors import DomainError, ImageRejected
from tests import imagefactory, jpegs

SMALL_DISPLAY = 384  # most tests: small images still take the libvips path, quickly


def processors(display: int = SMALL_DISPLAY) -> tuple[PillowImageProcessor, PillowImageProcessor]:
    """(with libvips, Pillow only), same limits."""

    def make(vips_jpeg: bool) -> PillowImageProcessor:
        return PillowImageProcessor(
            max_pixels=100_000_000, max_frames=10, display_max_side=display, vips_jpeg=vips_jpeg
        )

    return make(True), make(False)


def both(data: bytes, display: int = SMALL_DISPLAY) -> tuple[ProcessedImage, ProcessedImage]:
    vips, pillow = processors(display)
    return (
        vips.process(io.BytesIO(data), allowed=ALL_FORMATS),
        pillow.process(io.BytesIO(data), allowed=ALL_FORMATS),
    )


@pytest.fixture
def vips_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The output sizes ``vips_resample.fit`` was asked for (it still runs)."""
    calls: list[tuple[int, int]] = []
    real = vips_resample.fit

    def spy(source: BinaryIO, *, mode: str, size: tuple[int, int], out: tuple[int, int]) -> object:
        calls.append(out)
        return real(source, mode=mode, size=size, out=out)

    monkeypatch.setattr(vips_resample, "fit", spy)
    return calls


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (4000, 3000),
        (6000, 4000),
        (4001, 2999),
        (4999, 3001),
        (3000, 4000),
        (2049, 13),
        (8000, 5000),
    ],
)
def test_display_size_is_exactly_the_pillow_paths(
    width: int, height: int, vips_calls: list[tuple[int, int]]
) -> None:
    data = imagefactory.encoded(Image.new("RGB", (width, height), (30, 140, 200)), quality=80)

    with_vips, pillow_only = both(data, display=2048)

    assert vips_calls  # libvips made this one
    assert jpegs.decode(with_vips.display).size == jpegs.decode(pillow_only.display).size
    assert jpegs.decode(with_vips.thumbnail).size == jpegs.decode(pillow_only.thumbnail).size
    assert (with_vips.width, with_vips.height) == (width, height)


def test_display_is_within_40_db_of_pillows_lanczos_on_a_photo(
    vips_calls: list[tuple[int, int]],
) -> None:
    data = jpegs.photo_jpeg(3000, 2000)

    with_vips, pillow_only = both(data, display=2048)

    assert vips_calls == [(2048, 1365)]
    assert jpegs.psnr(jpegs.decode(with_vips.display), jpegs.decode(pillow_only.display)) >= 40


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_on_the_pillow_path(
    orientation: int, vips_calls: list[tuple[int, int]]
) -> None:
    data = imagefactory.jpeg(1200, 800, exif_orientation=orientation)

    with_vips, pillow_only = both(data)

    assert vips_calls == [(384, 256)]  # resampled before turning, as Pillow does
    assert (with_vips.width, with_vips.height) == (pillow_only.width, pillow_only.height)
    display, expected = jpegs.decode(with_vips.display), jpegs.decode(pillow_only.display)
    assert display.size == expected.size
    assert jpegs.psnr(display, expected) >= 40  # the quadrants' colours are where Pillow put them


def test_greyscale_jpegs_become_the_same_rgb_display(vips_calls: list[tuple[int, int]]) -> None:
    data = imagefactory.encoded(jpegs.photo(1200, 800).convert("L"))

    with_vips, pillow_only = both(data)

    assert vips_calls
    display = jpegs.decode(with_vips.display)
    assert display.mode == "RGB"
    assert jpegs.psnr(display, jpegs.decode(pillow_only.display)) >= 40


def test_an_embedded_icc_profile_is_ignored_as_pillow_ignores_it(
    vips_calls: list[tuple[int, int]],
) -> None:
    picture = jpegs.photo(1200, 800)
    plain = imagefactory.encoded(picture)
    # A wide-gamut profile: colour-managing with it would visibly change every pixel.
    wide = imagefactory.encoded(picture, icc_profile=_display_p3_profile())

    with_profile, _ = both(wide)
    without, pillow_only = both(plain)

    assert len(vips_calls) == 2
    assert with_profile.display == without.display  # pixels untouched, profile dropped
    assert "icc_profile" not in jpegs.decode(with_profile.display).info
    assert jpegs.psnr(jpegs.decode(without.display), jpegs.decode(pillow_only.display)) >= 40


def test_cmyk_jpegs_keep_the_pillow_path(vips_calls: list[tuple[int, int]]) -> None:
    data = imagefactory.encoded(jpegs.photo(1200, 800).convert("CMYK"))

    with_vips, pillow_only = both(data)

    assert vips_calls == []
    assert with_vips == pillow_only


def test_jpegs_within_the_display_size_keep_the_pillow_path(
    vips_calls: list[tuple[int, int]],
) -> None:
    with_vips, pillow_only = both(jpegs.photo_jpeg(384, 200))

    assert vips_calls == []
    assert with_vips == pillow_only


def test_fit_refuses_modes_it_does_not_handle() -> None:
    with pytest.raises(ValueError, match="CMYK"):
        vips_resample.fit(io.BytesIO(b""), mode="CMYK", size=(1, 1), out=(1, 1))


def test_fit_leaves_a_file_with_corrupt_scan_data_to_pillow() -> None:
    data = jpegs.photo_jpeg(1200, 800)
    start = jpegs.scan_start(data)
    damaged = data[: start + 1000] + data[start + 1400 :]  # scan data lost: libjpeg warns

    assert (
        vips_resample.fit(io.BytesIO(damaged), mode="RGB", size=(1200, 800), out=(384, 256)) is None
    )
    assert (
        vips_resample.fit(io.BytesIO(data), mode="RGB", size=(1200, 800), out=(384, 256))
        is not None
    )


def test_truncated_jpegs_never_reach_libvips_and_are_refused_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The end check needs no decode: a file cut anywhere in its scans is handed to the
    Pillow path, whose reduced decode refuses it as it always has; libvips never sees it."""
    data = jpegs.photo_jpeg(3000, 2000)
    vips, pillow_only = processors(display=2048)
    decodes: list[str] = []
    real_fit, real_load = vips_resample.fit, JpegImagePlugin.JpegImageFile.load

    def fit(*args: object, **kwargs: object) -> object:
        decodes.append("libvips")
        return real_fit(*args, **kwargs)  # type: ignore[arg-type]

    def load(im: JpegImagePlugin.JpegImageFile) -> object:
        decodes.append("pillow")
        return real_load(im)

    for cut in (data[: len(data) // 2], data[:-2], data[: jpegs.scan_start(data) + 10]):
        monkeypatch.setattr(vips_resample, "fit", fit)
        monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
        with pytest.raises(ImageRejected) as refused:
            vips.process(io.BytesIO(cut), allowed=ALL_FORMATS)
        assert refused.value.code == "corrupt_image"
        assert "libvips" not in decodes  # the Pillow path's reduced decode refuses it
        monkeypatch.undo()
        with pytest.raises(ImageRejected) as before:
            pillow_only.process(io.BytesIO(cut), allowed=ALL_FORMATS)
        assert before.value.code == refused.value.code


def test_jpegs_over_4x_the_display_size_keep_the_pillow_paths_reduced_decode(
    vips_calls: list[tuple[int, int]],
) -> None:
    """libvips would decode a 9000 x 6000 photo at half scale for a 2048 display, and at a
    reduced scale libvips 8.18 does not fail on libjpeg's warnings: Pillow decodes these."""
    data = imagefactory.encoded(Image.new("RGB", (9000, 6000), (90, 20, 160)), quality=70)
    start = jpegs.scan_start(data)
    damaged = data[: start + 2000] + data[start + 2400 :]  # 400 bytes of scan data lost

    with_vips, pillow_only = both(data, display=2048)

    assert vips_calls == []
    assert with_vips == pillow_only
    vips, pillow = processors(display=2048)
    assert _verdict(vips, damaged) == _verdict(pillow, damaged)
    assert not vips_resample.resamples((8192, 5000), (2048, 1250))
    assert vips_resample.resamples((8191, 5000), (2048, 1250))
    with pytest.raises(ValueError, match="4x"):
        vips_resample.fit(io.BytesIO(data), mode="RGB", size=(9000, 6000), out=(2048, 1365))


def test_mutated_jpegs_get_the_pillow_paths_verdict() -> None:
    """A few hundred damaged JPEGs (baseline and progressive; cut, end marker missing, bits
    flipped, bytes overwritten in scans and headers): the same accept/reject verdict and
    error code from the libvips path as from Pillow alone."""
    rnd = random.Random(12)
    sources = [
        jpegs.photo_jpeg(600, 400, seed=1),
        jpegs.photo_jpeg(500, 700, seed=2, progressive=True),
        imagefactory.encoded(jpegs.photo(640, 480, seed=3).convert("L")),
    ]
    vips, pillow_only = processors()
    deadline = time.monotonic() + 30
    tally: dict[tuple[str, bool], int] = {}
    for n in range(300):
        kind, data = jpegs.broken(sources[n % len(sources)], rnd)
        expected = _verdict(pillow_only, data)
        assert _verdict(vips, data) == expected, (n, kind)
        key = (kind, expected == "ok")
        tally[key] = tally.get(key, 0) + 1
        assert time.monotonic() < deadline, "the check must stay bounded in time"
    # Both verdicts really occur: refused cuts and missing ends, accepted and refused damage.
    assert tally.get(("cut", False))
    assert tally.get(("no_eoi", False))
    assert tally.get(("flip", True))
    assert tally.get(("header", False))
    assert ("cut", True) not in tally


@pytest.mark.parametrize(
    ("tail", "complete"),
    [(b"", True), (bytes(1000), True), (b"trailer\xff\xd9more", True)],
)
def test_ends_complete_reads_to_the_first_eoi_after_the_scans(tail: bytes, complete: bool) -> None:
    assert jpeg_end.ends_complete(io.BytesIO(jpegs.photo_jpeg(64, 48) + tail)) is complete


def test_ends_complete_is_false_for_any_cut_and_never_sees_an_exif_thumbnails_eoi() -> None:
    exif = Image.Exif()
    exif[0x010E] = "a description"  # ImageDescription
    thumbnail = jpegs.photo_jpeg(32, 24)  # a whole JPEG, EOI included, inside APP1
    data = imagefactory.encoded(jpegs.photo(300, 200), exif=exif.tobytes() + thumbnail)
    progressive = jpegs.photo_jpeg(300, 200, progressive=True)

    assert jpeg_end.ends_complete(io.BytesIO(data))
    assert jpeg_end.ends_complete(io.BytesIO(progressive))
    for source in (data, progressive):
        for cut in range(100, len(source) - 1, max(1, len(source) // 40)):
            assert not jpeg_end.ends_complete(io.BytesIO(source[:cut])), cut
    assert not jpeg_end.ends_complete(io.BytesIO(b"\xff\xd8\xff\xd9"))  # an end but no scan
    assert not jpeg_end.ends_complete(
        io.BytesIO(b"\xff\xd8\xff\xe0\x00\x01rest")
    )  # impossible length


def _verdict(processor: PillowImageProcessor, data: bytes) -> str:
    try:
        processor.process(io.BytesIO(data), allowed=ALL_FORMATS)
    except DomainError as exc:
        return exc.code
    return "ok"


def _display_p3_profile() -> bytes:
    import pyvips

    srgb = pyvips.Image.black(2, 2, bands=3).copy(interpretation="srgb")
    profile: bytes = srgb.icc_transform("p3", input_profile="srgb").get("icc-profile-data")
    return profile
