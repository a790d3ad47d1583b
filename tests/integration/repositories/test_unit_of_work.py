"""The unit of work: one transaction, published by ``commit()`` only, handing out copies."""

from __future__ import annotations

from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import ME, account, model, read, seed, write


def test_a_commit_is_seen_by_later_transactions(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.accounts.add(account(ME)))

    assert read(uow, lambda tx: tx.accounts.get(ME)) == account(ME)


def test_leaving_without_commit_keeps_nothing(uow: UnitOfWorkFactory) -> None:
    with uow(write=True) as tx:
        tx.accounts.add(account(ME))
        assert tx.accounts.get(ME) == account(ME)  # its own write, seen inside

    assert read(uow, lambda tx: tx.accounts.get(ME)) is None


def test_rollback_drops_the_writes_before_it_and_keeps_those_after(
    uow: UnitOfWorkFactory,
) -> None:
    with uow(write=True) as tx:
        tx.accounts.add(account("acct-dropped"))
        tx.rollback()
        tx.accounts.add(account("acct-kept"))
        tx.commit()

    assert read(uow, lambda tx: tx.accounts.get("acct-dropped")) is None
    assert read(uow, lambda tx: tx.accounts.get("acct-kept")) == account("acct-kept")


def test_a_change_to_a_handed_out_entity_needs_update(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(uow, lambda tx: tx.models.add(model("m-1")))

    with uow(write=True) as tx:
        changed = tx.models.get(ME, "m-1")
        assert changed is not None
        changed.display_name = "renamed"
        changed.attributes["age"] = 99  # nested values are copies too
        changed.attributes["tags"].append("c")
        tx.commit()

    assert read(uow, lambda tx: tx.models.get(ME, "m-1")) == model("m-1")


def test_an_added_entity_is_copied_in(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    added = model("m-1")
    with uow(write=True) as tx:
        tx.models.add(added)
        tx.commit()
    added.attributes["tags"].append("c")

    assert read(uow, lambda tx: tx.models.get(ME, "m-1")) == model("m-1")


def test_check_passes_while_the_database_answers(uow: UnitOfWorkFactory) -> None:
    uow.check()
