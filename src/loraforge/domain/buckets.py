"""Aspect-ratio buckets: the sizes a training sees its pictures at, instead of a centre square.

A centre crop of a wide photo cuts its edges away, and with them a subject that sits there.
Bucketing (as kohya's sd-scripts, ai-toolkit and SimpleTuner do) trains each picture at the
bucket whose aspect ratio is nearest to its own, so only a thin margin is ever cut. Buckets
share the plan's pixel budget (at most ``resolution²`` pixels), have sides that are multiples of
64 (the UNet halves a latent three times, the VAE divides by 8) and aspect ratios up to 2:1.

Pure arithmetic: the service records each picture's bucket in the training manifest from the
image's stored size, and the trainer uses the same function on the decoded picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

STEP = 64  # every side is a multiple of this
MAX_ASPECT = 2.0  # the widest bucket is 2:1 (and the tallest 1:2)
MIN_FILL = 0.8  # a bucket uses at least this share of the pixel budget (see ``buckets``)


@dataclass(frozen=True, order=True)
class Bucket:
    width: int
    height: int

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@cache
def buckets(resolution: int) -> tuple[Bucket, ...]:
    """Every bucket for a training side of ``resolution``, narrowest first.

    Every size within the aspect cap that fills at least ``MIN_FILL`` of the pixel budget
    (more shapes, so each picture finds one it fits with little cut), plus, for each width,
    the tallest height within the budget and the cap (at small sides the 64 px steps leave no
    2:1 bucket that fills the budget: a 2:1 picture still trains whole, at fewer pixels).
    Of buckets with the same aspect ratio only the largest is kept."""
    if resolution < STEP:
        raise ValueError(f"a training side below {STEP} px has no bucket")
    budget = resolution * resolution
    found: set[Bucket] = set()
    sides = range(STEP, int(resolution * MAX_ASPECT) + 1, STEP)
    for width in sides:
        for height in sides:
            shape = Bucket(width, height)
            fits = width * height <= budget and 1 / MAX_ASPECT <= shape.aspect <= MAX_ASPECT
            if fits and width * height >= MIN_FILL * budget:
                found.add(shape)
        tallest = min(budget // width, int(width * MAX_ASPECT)) // STEP * STEP
        if tallest >= width:
            found.update((Bucket(width, tallest), Bucket(tallest, width)))
    largest: dict[float, Bucket] = {}
    for b in found:
        if b.aspect not in largest or b.width > largest[b.aspect].width:
            largest[b.aspect] = b
    return tuple(sorted(largest.values(), key=lambda b: (b.aspect, b.width)))


def bucket_for(width: int, height: int, resolution: int) -> Bucket:
    """The bucket a ``width`` x ``height`` picture trains at: the one that cuts least of it,
    the larger one where two cut the same."""
    if width <= 0 or height <= 0:
        raise ValueError("a picture has positive sides")
    return min(
        buckets(resolution),
        key=lambda b: (round(_cut(width, height, b), 6), -b.width * b.height),
    )


def _cut(width: int, height: int, bucket: Bucket) -> float:
    """The fraction of a picture outside ``bucket`` once scaled to cover it."""
    picture, shape = width / height, bucket.aspect
    return 1.0 - min(picture, shape) / max(picture, shape)


@dataclass(frozen=True)
class Fit:
    """How a picture becomes its bucket: scaled to ``scaled`` (covering the bucket), then the
    ``bucket``-sized window at ``left``/``top`` is kept."""

    bucket: Bucket
    scaled: tuple[int, int]
    left: int
    top: int

    @property
    def cut(self) -> float:
        """The fraction of the scaled picture that falls outside the bucket."""
        kept = self.bucket.width * self.bucket.height
        return 1.0 - kept / (self.scaled[0] * self.scaled[1])


def fit(width: int, height: int, resolution: int) -> Fit:
    """Scale to cover the picture's bucket, keeping the aspect ratio; centre the window."""
    bucket = bucket_for(width, height, resolution)
    scale = max(bucket.width / width, bucket.height / height)
    scaled = (max(bucket.width, round(width * scale)), max(bucket.height, round(height * scale)))
    left = (scaled[0] - bucket.width) // 2
    top = (scaled[1] - bucket.height) // 2
    return Fit(bucket, scaled, left, top)
