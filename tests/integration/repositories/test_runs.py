"""TrainingRepository and PredictionRepository: runs, scoped to an account unless asked by id
alone (the worker's reads), soft-deleted runs hidden from the account."""

from __future__ import annotations

import dataclasses

import pytest

from loraforge.domain.work import InputImage, Prediction, Progress, RunStatus
from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import (
    ME,
    OTHER,
    at,
    blob_key,
    model,
    prediction,
    read,
    seed,
    training,
    write,
)


@pytest.fixture(autouse=True)
def models(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(uow, lambda tx: tx.models.add(model("m-1")), lambda tx: tx.models.add(model("m-2")))


def test_training_round_trip(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.trainings.add(training("tr-1", "m-1"), pinned_blobs=set()))

    assert read(uow, lambda tx: tx.trainings.get("tr-1")) == training("tr-1", "m-1")
    assert read(uow, lambda tx: tx.trainings.get("tr-1", account_id=ME)) == training("tr-1", "m-1")
    assert read(uow, lambda tx: tx.trainings.get("tr-1", account_id=OTHER)) is None
    assert read(uow, lambda tx: tx.trainings.get("tr-missing")) is None


def test_a_deleted_training_is_hidden_from_its_account_only(uow: UnitOfWorkFactory) -> None:
    gone = dataclasses.replace(training("tr-1", "m-1"), deleted_at=at(3))
    write(uow, lambda tx: tx.trainings.add(gone, pinned_blobs=set()))

    assert read(uow, lambda tx: tx.trainings.get("tr-1", account_id=ME)) is None
    assert read(uow, lambda tx: tx.trainings.get("tr-1")) == gone


def test_pinned_blobs_are_referenced_while_the_training_exists(uow: UnitOfWorkFactory) -> None:
    pins = {blob_key("a"), blob_key("b")}
    write(uow, lambda tx: tx.trainings.add(training("tr-1", "m-1"), pinned_blobs=pins))

    found = read(uow, lambda tx: tx.images.referenced_blob_keys([*pins, blob_key("c")]))

    assert found == pins


def test_training_update_writes_every_field(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.trainings.add(training("tr-1", "m-1"), pinned_blobs=set()))
    finished = dataclasses.replace(
        training("tr-1", "m-1"),
        status=RunStatus.SUCCEEDED,
        progress=Progress(step=100, total_steps=100, loss=0.125, eta_seconds=0.0),
        manifest={"changed": True},
        error="a note",
        artifact_key=blob_key("lora"),
        started_at=at(1),
        finished_at=at(2),
        cancel_requested=True,
        webhook_url=None,
    )

    write(
        uow,
        lambda tx: tx.trainings.update(finished),
        lambda tx: tx.trainings.update(training("tr-missing", "m-1")),  # no row: nothing
    )

    assert read(uow, lambda tx: tx.trainings.get("tr-1")) == finished
    assert read(uow, lambda tx: tx.trainings.get("tr-missing")) is None


def test_list_for_model_answers_live_trainings_newest_first(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        lambda tx: tx.trainings.add(training("tr-old", "m-1", t=1), pinned_blobs=set()),
        lambda tx: tx.trainings.add(training("tr-b", "m-1", t=5), pinned_blobs=set()),
        lambda tx: tx.trainings.add(training("tr-a", "m-1", t=5), pinned_blobs=set()),
        lambda tx: tx.trainings.add(
            dataclasses.replace(training("tr-gone", "m-1", t=9), deleted_at=at(9)),
            pinned_blobs=set(),
        ),
        lambda tx: tx.trainings.add(training("tr-other", "m-2", t=7), pinned_blobs=set()),
    )

    listed = read(uow, lambda tx: tx.trainings.list_for_model("m-1"))

    assert [t.id for t in listed] == ["tr-b", "tr-a", "tr-old"]
    assert listed[0] == training("tr-b", "m-1", t=5)
    assert read(uow, lambda tx: tx.trainings.list_for_model("m-missing")) == []


def test_prediction_round_trip(uow: UnitOfWorkFactory) -> None:
    stored = prediction("p-1", ["m-1", "m-2"])
    write(uow, lambda tx: tx.predictions.add(stored))

    assert read(uow, lambda tx: tx.predictions.get("p-1")) == stored
    assert read(uow, lambda tx: tx.predictions.get("p-1", account_id=ME)) == stored
    assert read(uow, lambda tx: tx.predictions.get("p-1", account_id=OTHER)) is None
    assert read(uow, lambda tx: tx.predictions.get("p-missing")) is None


def test_a_deleted_prediction_is_hidden_from_its_account_only(uow: UnitOfWorkFactory) -> None:
    gone = dataclasses.replace(prediction("p-1", ["m-1"]), deleted_at=at(3))
    write(uow, lambda tx: tx.predictions.add(gone))

    assert read(uow, lambda tx: tx.predictions.get("p-1", account_id=ME)) is None
    assert read(uow, lambda tx: tx.predictions.get("p-1")) == gone


def _with_inputs(prediction_id: str, init: str, mask: str) -> Prediction:
    return dataclasses.replace(
        prediction(prediction_id, ["m-1"]),
        init_image=InputImage(source="img-init", blob_key=blob_key(init)),
        mask_image=InputImage(source="data:sha256,00", blob_key=blob_key(mask)),
    )


def test_a_predictions_input_holds_last_until_unpinned(uow: UnitOfWorkFactory) -> None:
    """Held from the add to the unpin (its end); the echo of its inputs stays."""
    stored = _with_inputs("p-1", "init", "mask")
    write(
        uow,
        lambda tx: tx.predictions.add(stored),
        lambda tx: tx.predictions.add(_with_inputs("p-2", "init", "other")),
    )
    both = {blob_key("init"), blob_key("mask")}
    assert read(uow, lambda tx: tx.predictions.pinned("p-1")) == both
    asked = [*both, blob_key("other")]

    with uow(write=True) as tx:
        assert tx.predictions.unpin("p-1") == both
        tx.commit()

    assert read(uow, lambda tx: tx.predictions.pinned("p-1")) == set()
    assert read(uow, lambda tx: tx.predictions.get("p-1")) == stored
    # p-2 still holds the shared init picture and its own mask.
    held = {blob_key("init"), blob_key("other")}
    assert read(uow, lambda tx: tx.images.referenced_blob_keys(asked)) == held
    with uow(write=True) as tx:
        assert tx.predictions.unpin("p-1") == set()  # once


def test_unpin_blobs_drops_every_predictions_hold_on_them(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        lambda tx: tx.predictions.add(_with_inputs("p-1", "erased", "mask-1")),
        lambda tx: tx.predictions.add(_with_inputs("p-2", "kept", "erased")),
        lambda tx: tx.predictions.add(_with_inputs("p-3", "kept", "mask-3")),
    )

    with uow(write=True) as tx:
        assert tx.predictions.unpin_blobs([blob_key("erased"), blob_key("none")]) == {"p-1", "p-2"}
        tx.commit()

    assert read(uow, lambda tx: tx.predictions.pinned("p-1")) == {blob_key("mask-1")}
    assert read(uow, lambda tx: tx.predictions.pinned("p-2")) == {blob_key("kept")}
    assert read(uow, lambda tx: tx.predictions.pinned("p-3")) == {
        blob_key("kept"),
        blob_key("mask-3"),
    }
    assert read(uow, lambda tx: tx.images.referenced_blob_keys([blob_key("erased")])) == set()
    with uow(write=True) as tx:
        assert tx.predictions.unpin_blobs([]) == set()


def test_prediction_update_writes_every_field(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.predictions.add(prediction("p-1", ["m-1"])))
    finished = dataclasses.replace(
        prediction("p-1", ["m-1"]),
        status=RunStatus.FAILED,
        progress=Progress(step=20, total_steps=20, loss=None, eta_seconds=None),
        error="out of memory",
        output_image_ids=["img-1", "img-2"],
        started_at=at(1),
        finished_at=at(2),
        webhook_url="https://hooks.example/p",
    )

    write(
        uow,
        lambda tx: tx.predictions.update(finished),
        lambda tx: tx.predictions.update(prediction("p-missing", ["m-1"])),  # no row: nothing
    )

    assert read(uow, lambda tx: tx.predictions.get("p-1")) == finished
    assert read(uow, lambda tx: tx.predictions.get("p-missing")) is None


def test_with_weights_answers_the_trainings_whose_weights_are_stored(
    uow: UnitOfWorkFactory,
) -> None:
    stored = dataclasses.replace(training("tr-stored", "m-1"), artifact_key=blob_key("w1"))
    write(
        uow,
        lambda tx: tx.trainings.add(stored, pinned_blobs=set()),
        lambda tx: tx.trainings.add(
            dataclasses.replace(stored, id="tr-deleted", deleted_at=at(2)), pinned_blobs=set()
        ),
        lambda tx: tx.trainings.add(
            dataclasses.replace(stored, id="tr-erased", artifact_key=None, erased_at=at(3)),
            pinned_blobs=set(),
        ),
        lambda tx: tx.trainings.add(training("tr-queued", "m-1"), pinned_blobs=set()),
    )
    many = [f"tr-missing-{n}" for n in range(1200)]  # more than one query's worth of ids

    found = read(
        uow,
        lambda tx: tx.trainings.with_weights(
            ["tr-stored", "tr-deleted", "tr-erased", "tr-queued", *many]
        ),
    )

    assert found == {"tr-stored", "tr-deleted"}
    assert read(uow, lambda tx: tx.trainings.with_weights([])) == set()
