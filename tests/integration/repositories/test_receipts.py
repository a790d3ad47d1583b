"""TaskReceiptRepository: what a client-chosen task id produced, per account and scope."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from loraforge.domain.errors import Conflict
from loraforge.ports import TASK_CONFLICT, UnitOfWork, UnitOfWorkFactory
from tests.integration.repositories.entities import (
    ME,
    OTHER,
    account,
    at,
    read,
    seed,
    write,
)

RESULT: dict[str, Any] = {"imageId": "img-1", "nested": {"list": [1, 2.5, None, "x"]}}


@pytest.fixture(autouse=True)
def accounts(uow: UnitOfWorkFactory) -> None:
    seed(uow)


def receipt(
    scope: str, task_id: str, *, t: float = 0, account_id: str = ME
) -> Callable[[UnitOfWork], None]:
    def add(tx: UnitOfWork) -> None:
        tx.receipts.add(account_id, scope, task_id, fingerprint="f" * 64, result=RESULT, at=at(t))

    return add


def test_receipt_round_trip(uow: UnitOfWorkFactory) -> None:
    write(uow, receipt("runware:upload", "task-1"))

    assert read(uow, lambda tx: tx.receipts.get(ME, "runware:upload", "task-1")) == (
        "f" * 64,
        RESULT,
    )
    assert read(uow, lambda tx: tx.receipts.get(ME, "runware:upload", "task-2")) is None
    assert read(uow, lambda tx: tx.receipts.get(ME, "runware:other", "task-1")) is None
    assert read(uow, lambda tx: tx.receipts.get(OTHER, "runware:upload", "task-1")) is None


def test_a_task_id_is_per_account_and_scope(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        receipt("runware:upload", "task-1"),
        receipt("runware:other", "task-1"),
        receipt("runware:upload", "task-1", account_id=OTHER),
    )

    assert read(uow, lambda tx: tx.receipts.get(OTHER, "runware:upload", "task-1")) is not None


def test_a_stored_task_id_is_a_duplicate_and_the_transaction_goes_on(
    uow: UnitOfWorkFactory,
) -> None:
    write(uow, receipt("runware:upload", "task-1"))

    with uow(write=True) as tx:
        with pytest.raises(Conflict) as caught:
            receipt("runware:upload", "task-1", t=5)(tx)
        assert caught.value.code == TASK_CONFLICT
        tx.accounts.add(account("acct-after"))
        tx.commit()

    assert read(uow, lambda tx: tx.accounts.get("acct-after")) == account("acct-after")
    with uow(write=True) as tx:
        receipt("runware:upload", "task-2")(tx)
        with pytest.raises(Conflict):
            receipt("runware:upload", "task-2")(tx)  # also within one transaction


def test_a_task_id_stored_concurrently_is_a_duplicate_once_that_commits(
    uow: UnitOfWorkFactory,
) -> None:
    outcome: list[str | None] = []

    def rival() -> None:
        with uow(write=True) as tx:
            try:
                receipt("runware:upload", "task-1")(tx)
            except Conflict as exc:
                outcome.append(exc.code)
                return
            outcome.append(None)
            tx.commit()

    with uow(write=True) as tx:
        receipt("runware:upload", "task-1")(tx)
        # PostgreSQL blocks the rival's insert until this commits; SQLite and the fake make
        # the rival's whole transaction wait.
        thread = threading.Thread(target=rival)
        thread.start()
        thread.join(timeout=0.3)
        tx.commit()
    thread.join()

    assert outcome == [TASK_CONFLICT]


def test_delete_before_forgets_old_receipts_of_a_scope_prefix(uow: UnitOfWorkFactory) -> None:
    write(
        uow,
        receipt("runware:upload", "old-1", t=1),
        receipt("runware:upload", "old-2", t=2, account_id=OTHER),
        receipt("runware:upload", "new", t=10),
        receipt("scenario:upload", "old", t=1),
        receipt("run_ware:upload", "like-wildcard", t=1),  # ``_`` is no wildcard
        receipt("runXware:upload", "like-wildcard", t=1),
    )

    def delete(prefix: str, limit: int) -> int:
        with uow(write=True) as tx:
            count = tx.receipts.delete_before(prefix, before=at(10), limit=limit)
            tx.commit()
        return count

    assert delete("runware:", limit=1) == 1
    assert delete("runware:", limit=10) == 1
    assert delete("runware:", limit=10) == 0
    assert read(uow, lambda tx: tx.receipts.get(ME, "runware:upload", "new")) is not None
    assert read(uow, lambda tx: tx.receipts.get(ME, "scenario:upload", "old")) is not None
    assert delete("run_ware:", limit=10) == 1
    assert read(uow, lambda tx: tx.receipts.get(ME, "runXware:upload", "like-wildcard"))
