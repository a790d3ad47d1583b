"""ModelRepository: live models of an account, newest first; soft delete hides a model."""

from __future__ import annotations

import dataclasses

import pytest

from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import ME, OTHER, at, model, read, seed, write


@pytest.fixture(autouse=True)
def accounts(uow: UnitOfWorkFactory) -> None:
    seed(uow)


def test_round_trip(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.models.add(model("m-1")))

    assert read(uow, lambda tx: tx.models.get(ME, "m-1")) == model("m-1")
    assert read(uow, lambda tx: tx.models.get(ME, "m-missing")) is None


def test_another_account_s_model_is_not_found(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.models.add(model("m-1")))

    assert read(uow, lambda tx: tx.models.get(OTHER, "m-1")) is None


def test_a_deleted_model_is_not_found(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.models.add(dataclasses.replace(model("m-1"), deleted_at=at(1))))

    assert read(uow, lambda tx: tx.models.get(ME, "m-1")) is None


def test_get_with_lock_in_a_write_transaction(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.models.add(model("m-1")))

    with uow(write=True) as tx:
        assert tx.models.get(ME, "m-1", lock=True) == model("m-1")
        assert tx.models.get(OTHER, "m-1", lock=True) is None


def test_update_writes_every_field_but_the_owner(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.models.add(model("m-1")))
    changed = dataclasses.replace(
        model("m-1"),
        display_name="renamed",
        custom_model_type=None,
        base_model="sd15-local",
        updated_at=at(5),
        attributes={"nested": {"list": [1, 2.5, None, "x"]}},
    )

    write(uow, lambda tx: tx.models.update(dataclasses.replace(changed, account_id=OTHER)))

    assert read(uow, lambda tx: tx.models.get(ME, "m-1")) == changed
    write(uow, lambda tx: tx.models.update(dataclasses.replace(changed, deleted_at=at(6))))
    assert read(uow, lambda tx: tx.models.get(ME, "m-1")) is None


def test_list_answers_live_models_newest_first_with_their_total(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        lambda tx: tx.models.add(model("m-old", t=1)),
        lambda tx: tx.models.add(model("m-b", t=5)),
        lambda tx: tx.models.add(model("m-a", t=5)),  # same time: by id, descending
        lambda tx: tx.models.add(model("m-new", t=9)),
        lambda tx: tx.models.add(dataclasses.replace(model("m-gone", t=7), deleted_at=at(8))),
        lambda tx: tx.models.add(model("m-theirs", OTHER, t=6)),
    )

    def ids(offset: int, limit: int) -> tuple[list[str], int]:
        found, total = read(uow, lambda tx: tx.models.list(ME, offset=offset, limit=limit))
        return [m.id for m in found], total

    assert ids(0, 10) == (["m-new", "m-b", "m-a", "m-old"], 4)
    assert ids(1, 2) == (["m-b", "m-a"], 4)
    assert ids(4, 2) == ([], 4)
    assert read(uow, lambda tx: tx.models.list("acct-none", offset=0, limit=5)) == ([], 0)
