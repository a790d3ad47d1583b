"""ImageRepository and the dataset check: measures stored per display variant, and an upload's
exact duplicates among its model's images."""

from __future__ import annotations

import dataclasses

import pytest

from loraforge.domain.dataset import ImageQuality
from loraforge.domain.entities import Image, ImageKind
from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import (
    at,
    blob_key,
    image,
    model,
    read,
    seed,
    write,
)

TRAINING, REFERENCE = ImageKind.TRAINING, ImageKind.REFERENCE
SHARP = ImageQuality("0f0f0f0f0f0f0f0f", 812.5, 120.25, 0.01, 0.02, 1)
BLURRED = ImageQuality("0f0f0f0f0f0f0f0e", 12.0, 118.0, 0.0, 0.0, 0)


@pytest.fixture(autouse=True)
def models(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(uow, lambda tx: tx.models.add(model("m-1")), lambda tx: tx.models.add(model("m-2")))


def save(uow: UnitOfWorkFactory, image_id: str, display_key: str, quality: ImageQuality) -> bool:
    with uow(write=True) as tx:
        saved = tx.images.save_quality(image_id, display_key, quality)
        tx.commit()
    return saved


def qualities(uow: UnitOfWorkFactory, *image_ids: str) -> dict[str, ImageQuality]:
    return read(uow, lambda tx: tx.images.qualities(image_ids))


def test_measures_round_trip_and_a_second_measuring_replaces_the_first(
    uow: UnitOfWorkFactory,
) -> None:
    write(
        uow,
        lambda tx: tx.images.add(image("img-1", "m-1")),
        lambda tx: tx.images.add(image("img-2", "m-1")),
    )
    display = image("img-1", "m-1").display_key

    assert qualities(uow, "img-1", "img-2") == {}
    assert save(uow, "img-1", display, BLURRED) is True
    assert save(uow, "img-1", display, SHARP) is True

    assert qualities(uow, "img-1", "img-2", "img-missing") == {"img-1": SHARP}
    assert qualities(uow) == {}


def test_measures_of_replaced_bytes_are_ignored_and_not_stored(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.images.add(image("img-1", "m-1")))
    old = image("img-1", "m-1").display_key
    assert save(uow, "img-1", old, SHARP)

    replaced = dataclasses.replace(image("img-1", "m-1"), display_key=blob_key("new display"))
    write(uow, lambda tx: tx.images.update(replaced))

    assert qualities(uow, "img-1") == {}  # measured on bytes the image no longer has
    assert save(uow, "img-1", old, SHARP) is False  # a measuring that started before
    assert qualities(uow, "img-1") == {}
    assert save(uow, "img-1", replaced.display_key, BLURRED) is True
    assert qualities(uow, "img-1") == {"img-1": BLURRED}


def test_measures_go_with_their_image(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        lambda tx: tx.images.add(image("img-1", "m-1")),
        lambda tx: tx.images.add(image("rw-1", None, kind=REFERENCE, used=1, origin="runware")),
    )
    assert save(uow, "img-1", image("img-1", "m-1").display_key, SHARP)
    assert save(uow, "rw-1", image("rw-1", None).display_key, SHARP)

    write(uow, lambda tx: tx.images.delete("img-1"))
    with uow(write=True) as tx:
        assert tx.images.delete_unused("rw-1", before=at(10))
        tx.commit()

    assert qualities(uow, "img-1", "rw-1") == {}
    assert save(uow, "img-1", image("img-1", "m-1").display_key, SHARP) is False
    # An image of the same id later starts without measures.
    write(uow, lambda tx: tx.images.add(image("img-1", "m-1")))
    assert qualities(uow, "img-1") == {}


def test_many_images_are_answered_at_once(uow: UnitOfWorkFactory) -> None:
    ids = [f"img-{n}" for n in range(620)]
    write(uow, *(lambda tx, i=i: tx.images.add(image(i, "m-1")) for i in ids))
    with uow(write=True) as tx:
        for image_id in ids[::2]:
            assert tx.images.save_quality(image_id, image(image_id, "m-1").display_key, SHARP)
        tx.commit()

    assert set(qualities(uow, *ids)) == set(ids[::2])


def test_first_with_sha256_finds_the_model_s_oldest_copy_of_a_file(
    uow: UnitOfWorkFactory,
) -> None:
    def copy_of(
        source: str, image_id: str, model_id: str, *, t: float, kind: ImageKind = TRAINING
    ) -> Image:
        return dataclasses.replace(
            image(image_id, model_id, t=t, kind=kind), sha256=image(source, None).sha256
        )

    write(
        uow,
        lambda tx: tx.images.add(copy_of("a", "later", "m-1", t=5)),
        lambda tx: tx.images.add(copy_of("a", "first-b", "m-1", t=2)),
        lambda tx: tx.images.add(copy_of("a", "first-a", "m-1", t=2)),  # same time: by id
        lambda tx: tx.images.add(copy_of("a", "reference", "m-1", t=1, kind=REFERENCE)),
        lambda tx: tx.images.add(copy_of("a", "elsewhere", "m-2", t=0)),
    )
    sha = image("a", None).sha256

    def first(model_id: str, kind: ImageKind, sha256: str = sha) -> str | None:
        found = read(uow, lambda tx: tx.images.first_with_sha256(model_id, kind, sha256))
        return found.id if found else None

    assert first("m-1", TRAINING) == "first-a"
    assert first("m-1", REFERENCE) == "reference"
    assert first("m-2", TRAINING) == "elsewhere"
    assert first("m-1", TRAINING, sha256=blob_key("other bytes")) is None
    found = read(uow, lambda tx: tx.images.first_with_sha256("m-1", TRAINING, sha))
    assert found == copy_of("a", "first-a", "m-1", t=2)
