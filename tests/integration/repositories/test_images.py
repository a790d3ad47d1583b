"""ImageRepository: scoped reads, a model's listing by kind (with the outputs of predictions
that mixed it), counts, blob references and the last-use bookkeeping of retention."""

from __future__ import annotations

import dataclasses

import pytest

from loraforge.domain.captions import CaptionSource
from loraforge.domain.entities import ImageKind
from loraforge.domain.errors import NotFound
from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import (
    ME,
    OTHER,
    at,
    blob_key,
    image,
    model,
    prediction,
    read,
    seed,
    training,
    write,
)

TRAINING, REFERENCE, OUTPUT = ImageKind.TRAINING, ImageKind.REFERENCE, ImageKind.OUTPUT


@pytest.fixture(autouse=True)
def models(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(uow, lambda tx: tx.models.add(model("m-1")), lambda tx: tx.models.add(model("m-2")))


def delete_model(uow: UnitOfWorkFactory, model_id: str) -> None:
    write(uow, lambda tx: tx.models.update(dataclasses.replace(model(model_id), deleted_at=at(99))))


def test_round_trip(uow: UnitOfWorkFactory) -> None:
    stored = image("img-1", "m-1", kind=REFERENCE, used=3, origin="runware", prediction_id="p-1")
    write(uow, lambda tx: tx.images.add(stored))

    assert read(uow, lambda tx: tx.images.get(ME, "img-1")) == stored
    assert read(uow, lambda tx: tx.images.get(OTHER, "img-1")) is None
    assert read(uow, lambda tx: tx.images.get(ME, "img-missing")) is None


def test_unscoped_get_ignores_the_account(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.images.add(image("img-1", "m-1")))

    assert read(uow, lambda tx: tx.images.get_unscoped("img-1")) == image("img-1", "m-1")
    assert read(uow, lambda tx: tx.images.get_unscoped("img-missing")) is None


def test_images_of_a_deleted_model_are_hidden_model_less_ones_stay(
    uow: UnitOfWorkFactory,
) -> None:
    write(
        uow,
        lambda tx: tx.images.add(image("img-owned", "m-1")),
        lambda tx: tx.images.add(image("img-free", None, kind=REFERENCE)),
    )

    delete_model(uow, "m-1")

    assert read(uow, lambda tx: tx.images.get(ME, "img-owned")) is None
    assert read(uow, lambda tx: tx.images.get_unscoped("img-owned")) is None
    assert read(uow, lambda tx: tx.images.get(ME, "img-free")) == image(
        "img-free", None, kind=REFERENCE
    )
    assert read(uow, lambda tx: tx.images.get_unscoped("img-free")) is not None


def list_ids(
    uow: UnitOfWorkFactory, model_id: str, kinds: set[ImageKind], offset: int = 0, limit: int = 50
) -> tuple[list[str], int]:
    found, total = read(
        uow, lambda tx: tx.images.list_for_model(model_id, kinds=kinds, offset=offset, limit=limit)
    )
    return [i.id for i in found], total


def test_listing_filters_by_kind_newest_first_and_pages(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        lambda tx: tx.images.add(image("t-1", "m-1", t=1)),
        lambda tx: tx.images.add(image("t-3", "m-1", t=3)),
        lambda tx: tx.images.add(image("t-2b", "m-1", t=2)),
        lambda tx: tx.images.add(image("t-2a", "m-1", t=2)),  # same time: by id, descending
        lambda tx: tx.images.add(image("r-1", "m-1", kind=REFERENCE, t=4)),
        lambda tx: tx.images.add(image("o-1", "m-1", kind=OUTPUT, t=5)),
        lambda tx: tx.images.add(image("other-model", "m-2", t=6)),
        lambda tx: tx.images.add(image("no-model", None, t=7)),
    )

    assert list_ids(uow, "m-1", {TRAINING}) == (["t-3", "t-2b", "t-2a", "t-1"], 4)
    assert list_ids(uow, "m-1", {TRAINING}, offset=1, limit=2) == (["t-2b", "t-2a"], 4)
    assert list_ids(uow, "m-1", {TRAINING}, offset=4, limit=2) == ([], 4)
    assert list_ids(uow, "m-1", {REFERENCE}) == (["r-1"], 1)
    assert list_ids(uow, "m-1", {TRAINING, REFERENCE, OUTPUT}, limit=3) == (
        ["o-1", "r-1", "t-3"],
        6,
    )
    assert list_ids(uow, "m-1", set()) == ([], 0)
    assert list_ids(uow, "m-missing", {TRAINING}) == ([], 0)


def test_outputs_of_a_mix_are_listed_under_every_model_it_mixed(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        lambda tx: tx.models.add(model("m-3")),
        lambda tx: tx.predictions.add(prediction("p-mix", ["m-1", "m-2", "m-1"])),
        lambda tx: tx.predictions.add(prediction("p-solo", ["m-2"])),
        lambda tx: tx.images.add(image("mix-a", "m-1", kind=OUTPUT, t=2, prediction_id="p-mix")),
        lambda tx: tx.images.add(image("mix-b", "m-1", kind=OUTPUT, t=4, prediction_id="p-mix")),
        lambda tx: tx.images.add(image("solo", "m-2", kind=OUTPUT, t=3, prediction_id="p-solo")),
        lambda tx: tx.images.add(image("train", "m-2", t=5)),
    )

    assert list_ids(uow, "m-1", {OUTPUT}) == (["mix-b", "mix-a"], 2)
    assert list_ids(uow, "m-2", {OUTPUT}) == (["mix-b", "solo", "mix-a"], 3)
    assert list_ids(uow, "m-2", {OUTPUT}, offset=1, limit=1) == (["solo"], 3)
    assert list_ids(uow, "m-2", {OUTPUT}, offset=2, limit=5) == (["mix-a"], 3)
    assert list_ids(uow, "m-2", {OUTPUT, TRAINING}, limit=2) == (["train", "mix-b"], 4)
    assert list_ids(uow, "m-2", {TRAINING}) == (["train"], 1)  # mixes are outputs only
    assert list_ids(uow, "m-3", {OUTPUT}) == ([], 0)
    assert read(uow, lambda tx: tx.images.count_for_model("m-2", OUTPUT)) == 1  # its own only


def test_a_mix_s_outputs_leave_the_other_models_when_their_owner_is_deleted(
    uow: UnitOfWorkFactory,
) -> None:
    write(
        uow,
        lambda tx: tx.predictions.add(prediction("p-mix", ["m-1", "m-2"])),
        lambda tx: tx.images.add(image("mix", "m-1", kind=OUTPUT, prediction_id="p-mix")),
    )
    assert list_ids(uow, "m-2", {OUTPUT}) == (["mix"], 1)

    delete_model(uow, "m-1")

    assert list_ids(uow, "m-2", {OUTPUT}) == ([], 0)


def test_count_for_model_counts_one_kind(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        lambda tx: tx.images.add(image("t-1", "m-1")),
        lambda tx: tx.images.add(image("t-2", "m-1")),
        lambda tx: tx.images.add(image("r-1", "m-1", kind=REFERENCE)),
        lambda tx: tx.images.add(image("t-other", "m-2")),
    )

    assert read(uow, lambda tx: tx.images.count_for_model("m-1", TRAINING)) == 2
    assert read(uow, lambda tx: tx.images.count_for_model("m-1", REFERENCE)) == 1
    assert read(uow, lambda tx: tx.images.count_for_model("m-1", OUTPUT)) == 0


def test_update_writes_every_field(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.images.add(image("img-1", "m-1")))
    replaced = dataclasses.replace(
        image("img-2", "m-2", kind=REFERENCE, t=5, used=6, origin="scenario"), id="img-1"
    )

    write(uow, lambda tx: tx.images.update(replaced))

    assert read(uow, lambda tx: tx.images.get(ME, "img-1")) == replaced


@pytest.mark.parametrize("source", list(CaptionSource))
def test_the_caption_and_who_wrote_it_are_stored(
    uow: UnitOfWorkFactory, source: CaptionSource
) -> None:
    added = dataclasses.replace(image("img-1", "m-1"), caption="", caption_source=source)
    write(uow, lambda tx: tx.images.add(added))
    assert read(uow, lambda tx: tx.images.get(ME, "img-1")) == added

    captioned = dataclasses.replace(added, caption="a red dress", caption_source=source)
    write(uow, lambda tx: tx.images.update(captioned))
    assert read(uow, lambda tx: tx.images.get(ME, "img-1")) == captioned


def test_update_of_a_deleted_row_is_not_found(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.images.add(image("img-1", "m-1")))
    write(uow, lambda tx: tx.images.delete("img-1"))

    with uow(write=True) as tx, pytest.raises(NotFound):
        tx.images.update(image("img-1", "m-1"))


def test_delete_removes_the_row_and_ignores_a_missing_one(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.images.add(image("img-1", "m-1")))

    write(uow, lambda tx: tx.images.delete("img-1"), lambda tx: tx.images.delete("img-missing"))

    assert read(uow, lambda tx: tx.images.get(ME, "img-1")) is None


def test_referenced_blob_keys_cover_images_pinned_inputs_and_artifacts(
    uow: UnitOfWorkFactory,
) -> None:
    artifact = dataclasses.replace(training("tr-1", "m-1"), artifact_key=blob_key("lora"))
    write(
        uow,
        lambda tx: tx.images.add(image("img-1", "m-1")),
        lambda tx: tx.trainings.add(artifact, pinned_blobs={blob_key("pinned")}),
    )
    img = image("img-1", "m-1")
    asked = [*img.blob_keys(), blob_key("pinned"), blob_key("lora"), blob_key("unused")]

    found = read(uow, lambda tx: tx.images.referenced_blob_keys(asked))

    assert found == {*img.blob_keys(), blob_key("pinned"), blob_key("lora")}
    assert read(uow, lambda tx: tx.images.referenced_blob_keys([])) == set()


def test_referenced_blob_keys_answers_for_many_keys(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.images.add(image("img-1", "m-1")))
    asked = [blob_key(f"unused-{n}") for n in range(1200)] + [image("img-1", "m-1").original_key]

    found = read(uow, lambda tx: tx.images.referenced_blob_keys(asked))

    assert found == {image("img-1", "m-1").original_key}


def test_touch_only_moves_the_last_use_forward(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.images.add(image("img-1", "m-1", used=10)))

    write(uow, lambda tx: tx.images.touch("img-1", at(5)))
    assert read(uow, lambda tx: tx.images.get(ME, "img-1")) == image("img-1", "m-1", used=10)

    write(uow, lambda tx: tx.images.touch("img-1", at(20)), lambda tx: tx.images.touch("x", at(1)))
    assert read(uow, lambda tx: tx.images.get(ME, "img-1")) == image("img-1", "m-1", used=20)


def test_list_unused_answers_one_origin_oldest_use_first(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        lambda tx: tx.images.add(image("rw-3", None, used=3, origin="runware")),
        lambda tx: tx.images.add(image("rw-1", None, used=1, origin="runware")),
        lambda tx: tx.images.add(image("rw-2", None, used=2, origin="runware", account_id=OTHER)),
        lambda tx: tx.images.add(image("rw-recent", None, used=10, origin="runware")),
        lambda tx: tx.images.add(image("native", None, used=0)),
    )

    def unused(limit: int) -> list[str]:
        found = read(uow, lambda tx: tx.images.list_unused("runware", before=at(10), limit=limit))
        return [i.id for i in found]

    assert unused(10) == ["rw-1", "rw-2", "rw-3"]  # every account; last use strictly before
    assert unused(2) == ["rw-1", "rw-2"]


def test_delete_unused_only_deletes_while_the_last_use_is_still_old(
    uow: UnitOfWorkFactory,
) -> None:
    write(
        uow,
        lambda tx: tx.images.add(image("old", None, used=1, origin="runware")),
        lambda tx: tx.images.add(image("touched", None, used=1, origin="runware")),
    )
    write(uow, lambda tx: tx.images.touch("touched", at(10)))

    with uow(write=True) as tx:
        assert tx.images.delete_unused("old", before=at(10)) is True
        assert tx.images.delete_unused("touched", before=at(10)) is False
        assert tx.images.delete_unused("missing", before=at(10)) is False
        tx.commit()

    assert read(uow, lambda tx: tx.images.get_unscoped("old")) is None
    assert read(uow, lambda tx: tx.images.get_unscoped("touched")) is not None
