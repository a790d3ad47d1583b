"""The dataset check's rules: each issue raised by its numbers, and only by them."""

from __future__ import annotations

from dataclasses import replace

from loraforge.domain.dataset import (
    BLURRY_BELOW,
    NEAR_DUPLICATE_BITS,
    DatasetImage,
    ImageQuality,
    check_dataset,
    hamming,
    is_person_model,
)

GOOD = ImageQuality(
    phash="0" * 16, sharpness=400.0, luma=120.0, dark_share=0.01, bright_share=0.01, faces=1
)


PHASHES = [
    "0000000000000000",
    "ffffffffffffffff",
    "00000000ffffffff",
    "ffffffff00000000",
    "0000ffff0000ffff",
    "ffff0000ffff0000",
]  # 32 or more bits apart


def image(n: int, *, measured: dict[str, object] | None = None, **changes: object) -> DatasetImage:
    """Image ``n``: 1024 px square, captioned, sharp, well exposed, one face; hashes far apart.
    ``measured`` changes its quality measures, the other keywords its fields."""
    quality = replace(GOOD, **{"phash": PHASHES[n], **(measured or {})})  # type: ignore[arg-type]
    base = DatasetImage(f"img{n}", 1024, 1024, f"{n:064x}", f"caption {n}", quality)
    return replace(base, **changes)  # type: ignore[arg-type]


def codes(images: list[DatasetImage], *, person: bool = False) -> list[list[str]]:
    report = check_dataset(images, resolution=512, person=person, min_images=1)
    return [[issue.code for issue in r.issues] for r in report.images]


def test_a_clean_dataset_has_no_issues_and_is_ready() -> None:
    images = [image(n) for n in range(5)]
    report = check_dataset(images, resolution=512, person=True, min_images=5)
    assert [r.issues for r in report.images] == [[]] * 5
    assert (report.count, report.usable, report.captioned, report.ready) == (5, 5, 5, True)
    assert report.issue_counts == {}


def test_an_exact_copy_names_the_first_and_is_not_usable() -> None:
    first, copy = image(0), replace(image(1), sha256=image(0).sha256, quality=image(0).quality)
    report = check_dataset([first, copy], resolution=512, person=False, min_images=2)
    assert [i.code for i in report.images[0].issues] == []
    (issue,) = report.images[1].issues
    assert (issue.code, issue.details) == ("exact_duplicate", {"of": "img0"})
    assert (report.usable, report.ready) == (1, False)


def test_a_near_copy_names_the_nearest_and_its_distance() -> None:
    first = image(0)
    assert first.quality is not None
    flipped_bits = int(first.quality.phash, 16) ^ 0b111  # three bits differ
    near = image(1, measured={"phash": f"{flipped_bits:016x}"})
    far = image(2)
    report = check_dataset([first, far, near], resolution=512, person=False, min_images=1)
    (issue,) = report.images[2].issues
    assert issue.code == "near_duplicate"
    assert issue.details == {"of": "img0", "distance": 3, "threshold": NEAR_DUPLICATE_BITS}
    assert report.images[2].usable  # advice only


def test_small_wide_blurry_dark_bright_and_uncaptioned_images_are_flagged() -> None:
    images = [
        image(0, width=400, height=600),
        image(1, width=3000, height=1000),
        image(2, measured={"sharpness": BLURRY_BELOW - 1}),
        image(3, measured={"luma": 20.0, "dark_share": 0.7}),
        image(4, measured={"luma": 240.0, "bright_share": 0.8}),
        image(5, caption="  "),
    ]
    assert codes(images) == [
        ["low_resolution"],
        ["extreme_aspect"],
        ["blurry"],
        ["too_dark"],
        ["overexposed"],
        ["uncaptioned"],
    ]
    report = check_dataset(images, resolution=512, person=False, min_images=1)
    assert report.images[0].issues[0].details == {"shortSide": 400, "minimum": 512}
    assert report.images[3].issues[0].details["clippedShare"] == 0.7
    assert report.usable == 2  # the wide and the uncaptioned one
    assert report.captioned == 5
    assert report.issue_counts == {
        "blurry": 1,
        "extreme_aspect": 1,
        "low_resolution": 1,
        "overexposed": 1,
        "too_dark": 1,
        "uncaptioned": 1,
    }


def test_faces_are_judged_only_for_person_models() -> None:
    images = [image(0, measured={"faces": 0}), image(1, measured={"faces": 3})]
    assert codes(images, person=False) == [[], []]
    assert codes(images, person=True) == [["no_face"], ["multiple_faces"]]
    assert is_person_model(" Person ")
    assert is_person_model("character")
    assert not is_person_model("style")
    assert not is_person_model(None)


def test_unmeasured_images_get_only_the_checks_that_need_no_measure() -> None:
    images = [image(0, quality=None, width=100, height=100)]
    report = check_dataset(images, resolution=512, person=True, min_images=1)
    assert [i.code for i in report.images[0].issues] == ["low_resolution"]
    assert report.images[0].faces is None


def test_hamming_counts_differing_bits() -> None:
    assert hamming("00ff", "00fe") == 1
    assert hamming("ffffffffffffffff", "0000000000000000") == 64
