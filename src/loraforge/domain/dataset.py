"""The dataset check: what is wrong with a model's training images, before a training uses them.

Pure rules over numbers measured once per image (``ImageQuality``, from its display variant) and
what the model already knows (sizes, sha256s, captions). Every issue carries the numbers that
raised it, so a client can show them and a person can judge. Nothing here refuses an upload:
the issues are warnings, and a training refuses a dataset only when asked to
(``requireReadyDataset``).

The thresholds are documented in docs/training.md ("Dataset check"); the reasons for each are
beside it here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Perceptual hashes (64-bit DCT pHash) of the same picture re-encoded, resized or lightly
# edited differ in a few bits; unrelated pictures in ~32. 10 or fewer bits flags near-copies
# (bursts, crops of one shot) without flagging pictures that merely share a background.
NEAR_DUPLICATE_BITS = 10
# Variance of the Laplacian of the grey picture at 512 px on its long side (the classic
# Pech-Pacheco focus measure). Sharp photos score in the hundreds to thousands; a picture
# blurred with a 3 px Gaussian (or shaken, or out of focus) falls below 50.
BLURRY_BELOW = 50.0
# Mean luma (0-255). A picture a stop or two under- or overexposed stays inside; a black or a
# white backdrop filling most of the frame can cross them, which is why these are advice. The
# shares of crushed (< 16) and blown (> 239) pixels come with the issue for a person to judge.
TOO_DARK_LUMA = 40.0
OVEREXPOSED_LUMA = 220.0
# Beyond 2.5:1 even the widest aspect-ratio bucket (2:1) cuts a fifth of the picture away.
EXTREME_ASPECT = 2.5
# Model types (``customModelType``, case-insensitive) that are about one person: for them a
# picture without a frontal face, or with several, teaches the wrong thing.
PERSON_TYPES = frozenset({"person", "character", "face", "portrait", "people", "human"})
# Issues that make an image count as not usable (the rest are advice).
BLOCKING = frozenset({"exact_duplicate", "low_resolution", "blurry", "too_dark", "overexposed"})


@dataclass(frozen=True)
class ImageQuality:
    """What is measured of a training image once, on its display variant."""

    phash: str  # 64-bit perceptual hash, 16 hex digits
    sharpness: float  # variance of the Laplacian at 512 px long side
    luma: float  # mean, 0-255
    dark_share: float  # of pixels with luma < 16
    bright_share: float  # of pixels with luma > 239
    faces: int  # frontal faces found


@dataclass(frozen=True)
class DatasetImage:
    """One training image as the check sees it."""

    id: str
    width: int
    height: int
    sha256: str
    caption: str
    quality: ImageQuality | None  # None: not measured (yet)


@dataclass(frozen=True)
class Issue:
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)  # the numbers that raised it


@dataclass(frozen=True)
class ImageReport:
    id: str
    width: int
    height: int
    faces: int | None
    issues: list[Issue]

    @property
    def usable(self) -> bool:
        return not any(issue.code in BLOCKING for issue in self.issues)


@dataclass(frozen=True)
class DatasetReport:
    images: list[ImageReport]
    count: int
    usable: int
    captioned: int
    issue_counts: dict[str, int]
    ready: bool
    min_images: int


def is_person_model(custom_model_type: str | None) -> bool:
    return (custom_model_type or "").strip().lower() in PERSON_TYPES


def check_dataset(
    images: Sequence[DatasetImage], *, resolution: int, person: bool, min_images: int
) -> DatasetReport:
    """The report over ``images`` (in upload order: the first of two copies is the original).

    ``resolution`` is the base model's native side; ``person`` enables the face checks;
    ``ready`` means at least ``min_images`` usable images."""
    reports = []
    first_by_sha: dict[str, str] = {}
    seen: list[DatasetImage] = []
    for image in images:
        issues = _duplicate_issues(image, first_by_sha, seen)
        issues += image_issues(image, resolution=resolution, person=person)
        first_by_sha.setdefault(image.sha256, image.id)
        seen.append(image)
        faces = image.quality.faces if image.quality else None
        reports.append(ImageReport(image.id, image.width, image.height, faces, issues))
    usable = sum(r.usable for r in reports)
    counts = Counter(issue.code for r in reports for issue in r.issues)
    return DatasetReport(
        images=reports,
        count=len(reports),
        usable=usable,
        captioned=sum(bool(i.caption.strip()) for i in images),
        issue_counts=dict(sorted(counts.items())),
        ready=usable >= min_images,
        min_images=min_images,
    )


def _duplicate_issues(
    image: DatasetImage, first_by_sha: dict[str, str], earlier: Sequence[DatasetImage]
) -> list[Issue]:
    original = first_by_sha.get(image.sha256)
    if original is not None:
        return [
            Issue(
                "exact_duplicate",
                f"The same file as image {original}; it is trained once.",
                {"of": original},
            )
        ]
    if image.quality is None:
        return []
    nearest: tuple[int, str] | None = None
    for other in earlier:
        if other.quality is None or other.sha256 == image.sha256:
            continue
        distance = hamming(image.quality.phash, other.quality.phash)
        if distance <= NEAR_DUPLICATE_BITS and (nearest is None or distance < nearest[0]):
            nearest = (distance, other.id)
    if nearest is None:
        return []
    distance, other_id = nearest
    return [
        Issue(
            "near_duplicate",
            f"Nearly the same picture as image {other_id} (perceptual hashes {distance} of 64 "
            f"bits apart; {NEAR_DUPLICATE_BITS} or fewer counts as near).",
            {"of": other_id, "distance": distance, "threshold": NEAR_DUPLICATE_BITS},
        )
    ]


def image_issues(image: DatasetImage, *, resolution: int, person: bool) -> list[Issue]:
    """The issues of one image on its own (duplicates need the others: ``check_dataset``)."""
    issues = _shape_issues(image, resolution)
    quality = image.quality
    if quality is not None:
        issues += _quality_issues(quality, person=person)
    if not image.caption.strip():
        issues.append(Issue("uncaptioned", "The image has no caption."))
    return issues


def _shape_issues(image: DatasetImage, resolution: int) -> list[Issue]:
    issues = []
    short, long = sorted((image.width, image.height))
    if short < resolution:
        issues.append(
            Issue(
                "low_resolution",
                f"The short side is {short} px; the base model trains at {resolution} px, so "
                "the picture would be enlarged.",
                {"shortSide": short, "minimum": resolution},
            )
        )
    aspect = long / short
    if aspect > EXTREME_ASPECT:
        issues.append(
            Issue(
                "extreme_aspect",
                f"The aspect ratio is {aspect:.2f}:1; beyond {EXTREME_ASPECT}:1 training cuts "
                "off the ends.",
                {"aspect": round(aspect, 3), "maximum": EXTREME_ASPECT},
            )
        )
    return issues


def _quality_issues(quality: ImageQuality, *, person: bool) -> list[Issue]:
    issues = []
    if quality.sharpness < BLURRY_BELOW:
        issues.append(
            Issue(
                "blurry",
                f"The picture looks blurry (sharpness {quality.sharpness:.0f}, below "
                f"{BLURRY_BELOW:.0f}).",
                {"sharpness": round(quality.sharpness, 1), "threshold": BLURRY_BELOW},
            )
        )
    if quality.luma < TOO_DARK_LUMA:
        issues.append(
            Issue(
                "too_dark",
                f"The picture is too dark (mean brightness {quality.luma:.0f} of 255, "
                f"{quality.dark_share:.0%} of it black).",
                _exposure(quality, TOO_DARK_LUMA, quality.dark_share),
            )
        )
    if quality.luma > OVEREXPOSED_LUMA:
        issues.append(
            Issue(
                "overexposed",
                f"The picture is overexposed (mean brightness {quality.luma:.0f} of 255, "
                f"{quality.bright_share:.0%} of it white).",
                _exposure(quality, OVEREXPOSED_LUMA, quality.bright_share),
            )
        )
    if person and quality.faces == 0:
        issues.append(
            Issue("no_face", "No frontal face was found in a picture of a person.", {"faces": 0})
        )
    if person and quality.faces > 1:
        issues.append(
            Issue(
                "multiple_faces",
                f"{quality.faces} faces were found; a person model learns best from pictures "
                "of that person alone.",
                {"faces": quality.faces},
            )
        )
    return issues


def _exposure(quality: ImageQuality, threshold: float, clipped: float) -> dict[str, Any]:
    return {
        "luma": round(quality.luma, 1),
        "threshold": threshold,
        "clippedShare": round(clipped, 3),
    }


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of equal length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
