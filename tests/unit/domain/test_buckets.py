"""Aspect-ratio buckets: sizes within the budget, the nearest one chosen, little ever cut."""

from __future__ import annotations

import pytest

from loraforge.domain.buckets import STEP, Bucket, bucket_for, buckets, fit


@pytest.mark.parametrize("resolution", [64, 128, 256, 384, 512, 768, 1024])
def test_every_bucket_keeps_the_budget_the_step_and_the_aspect_cap(resolution: int) -> None:
    found = buckets(resolution)
    assert Bucket(resolution, resolution) in found
    for bucket in found:
        assert bucket.width % STEP == 0
        assert bucket.height % STEP == 0
        assert bucket.width * bucket.height <= resolution * resolution
        assert 0.5 <= bucket.aspect <= 2.0
        assert Bucket(bucket.height, bucket.width) in found  # tall and wide alike
    assert len({b.aspect for b in found}) == len(found)  # one bucket per aspect ratio
    if resolution >= 2 * STEP:
        assert any(b.aspect == 2.0 for b in found)  # a 2:1 picture trains whole


def test_sdxl_side_gives_the_familiar_buckets() -> None:
    found = {str(b) for b in buckets(1024)}
    assert {"1024x1024", "1152x896", "1216x832", "1344x768", "896x1152"} <= found


def test_a_picture_trains_at_the_nearest_aspect_ratio() -> None:
    assert bucket_for(4000, 3000, 512) == Bucket(576, 448)
    assert bucket_for(3000, 4000, 512) == Bucket(448, 576)
    assert bucket_for(1000, 1000, 512) == Bucket(512, 512)
    assert bucket_for(2000, 1000, 128) == Bucket(128, 64)
    assert bucket_for(5000, 1000, 512) == Bucket(640, 320)  # beyond 2:1: the widest one


@pytest.mark.parametrize(
    ("width", "height"), [(4000, 3000), (6000, 4000), (1080, 1920), (1000, 800)]
)
def test_common_photo_shapes_lose_only_a_thin_margin(width: int, height: int) -> None:
    for resolution in (512, 768, 1024):
        how = fit(width, height, resolution)
        assert how.cut < 0.07, (resolution, how)
        assert how.scaled[0] >= how.bucket.width
        assert how.scaled[1] >= how.bucket.height
        assert how.left + how.bucket.width <= how.scaled[0]
        assert how.top + how.bucket.height <= how.scaled[1]


def test_a_side_below_the_step_has_no_bucket() -> None:
    with pytest.raises(ValueError, match="no bucket"):
        buckets(32)
