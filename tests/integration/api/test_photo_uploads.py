"""Camera-sized JPEG uploads through the API take the libvips path (issue 12 §6) and answer
exactly as the Pillow-only path did: the same variants, and the same 4xx for broken files."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx2
import pytest

from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.settings import Settings
from tests import jpegs
from tests.conftest import Api, serving


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A 12 MP camera-like JPEG (4000 x 3000, quality 90)."""
    return jpegs.photo_jpeg(4000, 3000)


@pytest.fixture
def pillow_api(settings: Settings) -> Iterator[Api]:
    """A second server on the old path: every JPEG decoded and resampled by Pillow."""
    processor = PillowImageProcessor(
        max_pixels=settings.max_pixels, max_frames=settings.max_frames, vips_jpeg=False
    )
    with serving(settings, processor=processor) as api:
        yield api


def post(api: Api, data: bytes) -> httpx2.Response:
    model = api.client.post("/v1/models", json={"displayName": "m"}, headers=api.headers)
    assert model.status_code == 201, model.text
    return api.client.post(
        "/v1/images",
        params={"type": "modelInput", "modelId": model.json()["id"]},
        content=data,
        headers={**api.headers, "Content-Type": "application/octet-stream"},
    )


def test_a_12_mp_jpeg_gets_its_display_and_thumbnail_variants(api: Api, photo: bytes) -> None:
    response = post(api, photo)

    assert response.status_code == 201, response.text
    image = response.json()
    assert (image["width"], image["height"]) == (4000, 3000)
    display = api.client.get(image["displayUrl"])
    thumbnail = api.client.get(image["thumbnailUrl"])
    assert display.headers["content-type"] == "image/jpeg"
    assert jpegs.decode(display.content).size == (2048, 1536)
    assert jpegs.decode(thumbnail.content).size == (256, 192)
    assert api.client.get(image["url"]).content == photo  # the original, byte for byte


def test_the_display_variant_matches_the_pillow_paths(
    api: Api, pillow_api: Api, photo: bytes
) -> None:
    new, old = post(api, photo).json(), post(pillow_api, photo).json()

    display = jpegs.decode(api.client.get(new["displayUrl"]).content)
    before = jpegs.decode(pillow_api.client.get(old["displayUrl"]).content)
    assert jpegs.psnr(display, before) >= 40


def _cut_in_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _without_eoi(data: bytes) -> bytes:
    return data[:-2]


def _scan_bytes_lost(data: bytes) -> bytes:
    start = jpegs.scan_start(data)
    return data[: start + 5000] + data[start + 5400 :]


def _scan_bytes_flipped(data: bytes) -> bytes:
    start, damaged = jpegs.scan_start(data), bytearray(data)
    for at in range(start + 10_000, len(data) - 2, len(data) // 7):
        damaged[at] ^= 0x5A
    return bytes(damaged)


def _marker_run_in_scan(data: bytes) -> bytes:
    """0xFF bytes inside entropy-coded data: libjpeg warns, then fails on what follows."""
    start = jpegs.scan_start(data)
    return data[: start + 5000] + b"\xff" * 100 + data[start + 5000 :]


# Scan data lost or flipped: libjpeg conceals it with a warning, and Pillow always stored such
# files (201); libvips fails on the warning and leaves the verdict to Pillow, so they still are.
@pytest.mark.parametrize(
    "damage",
    [_cut_in_half, _without_eoi, _scan_bytes_lost, _scan_bytes_flipped, _marker_run_in_scan],
)
def test_a_broken_photo_gets_the_answer_it_got_before(
    api: Api, pillow_api: Api, photo: bytes, damage: Callable[[bytes], bytes]
) -> None:
    data = damage(photo)

    response, before = post(api, data), post(pillow_api, data)

    assert response.status_code == before.status_code, response.text
    if before.status_code != 201:
        assert response.json()["error"]["code"] == before.json()["error"]["code"]


@pytest.mark.parametrize("damage", [_cut_in_half, _without_eoi, _marker_run_in_scan])
def test_a_truncated_or_undecodable_photo_is_a_422_corrupt_image(
    api: Api, photo: bytes, damage: Callable[[bytes], bytes]
) -> None:
    response = post(api, damage(photo))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "corrupt_image"
