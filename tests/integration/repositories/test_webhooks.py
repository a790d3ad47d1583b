"""WebhookRepository: the outbox of deliveries, and each account's signing secret."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from loraforge.domain.work import WebhookDelivery
from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import (
    ME,
    OTHER,
    at,
    delivery,
    read,
    seed,
    write,
)


@pytest.fixture(autouse=True)
def accounts(uow: UnitOfWorkFactory) -> None:
    seed(uow)


def add(uow: UnitOfWorkFactory, *deliveries: WebhookDelivery) -> None:
    write(uow, *(lambda tx, d=d: tx.webhooks.add(d) for d in deliveries))


def due(uow: UnitOfWorkFactory, now: float, limit: int = 10) -> list[str]:
    with uow(write=True) as tx:
        return [d.id for d in tx.webhooks.due(at(now), limit=limit)]


def test_list_for_account_answers_its_deliveries_oldest_first(uow: UnitOfWorkFactory) -> None:
    add(uow, delivery("d-2", t=2), delivery("d-1", t=1), delivery("d-theirs", OTHER, t=0))

    listed = read(uow, lambda tx: tx.webhooks.list_for_account(ME))

    assert listed == [delivery("d-1", t=1), delivery("d-2", t=2)]
    assert read(uow, lambda tx: tx.webhooks.list_for_account("acct-none")) == []


def test_due_answers_pending_deliveries_by_next_attempt(uow: UnitOfWorkFactory) -> None:
    add(
        uow,
        delivery("d-late", due=5),
        delivery("d-early", due=1),
        delivery("d-theirs", OTHER, due=3),
        delivery("d-future", due=20),
        dataclasses.replace(delivery("d-sent", due=0), delivered_at=at(1)),
        dataclasses.replace(delivery("d-failed", due=0), failed_at=at(1)),
    )

    assert due(uow, now=5) == ["d-early", "d-theirs", "d-late"]  # due at ``now`` included
    assert due(uow, now=5, limit=2) == ["d-early", "d-theirs"]
    assert due(uow, now=0.5) == []


def test_update_writes_every_field(uow: UnitOfWorkFactory) -> None:
    add(uow, delivery("d-1"))
    retried = dataclasses.replace(
        delivery("d-1"), next_attempt_at=at(10), attempts=2, last_error="HTTP 500"
    )

    write(
        uow,
        lambda tx: tx.webhooks.update(retried),
        lambda tx: tx.webhooks.update(delivery("d-missing")),  # no row: nothing
    )

    assert read(uow, lambda tx: tx.webhooks.list_for_account(ME)) == [retried]
    delivered = dataclasses.replace(retried, delivered_at=at(11), last_error=None)
    write(uow, lambda tx: tx.webhooks.update(delivered))
    assert read(uow, lambda tx: tx.webhooks.list_for_account(ME)) == [delivered]


def test_a_claimed_delivery_is_not_handed_to_a_concurrent_sender(uow: UnitOfWorkFactory) -> None:
    add(uow, delivery("d-1", due=0))
    seen: list[list[str]] = []
    with uow(write=True) as tx:
        (claimed,) = tx.webhooks.due(at(1), limit=10)
        claimed.next_attempt_at = at(120)
        tx.webhooks.update(claimed)
        # PostgreSQL skips the locked row; SQLite and the fake make the rival wait.
        rival = threading.Thread(target=lambda: seen.append(due(uow, now=1)))
        rival.start()
        rival.join(timeout=0.3)
        tx.commit()
    rival.join()

    assert seen == [[]]


def test_secret_round_trip(uow: UnitOfWorkFactory) -> None:
    assert read(uow, lambda tx: tx.webhooks.get_secret(ME)) is None

    write(uow, lambda tx: tx.webhooks.set_secret(ME, "whsec_first"))
    write(uow, lambda tx: tx.webhooks.set_secret(ME, "whsec_second"))

    assert read(uow, lambda tx: tx.webhooks.get_secret(ME)) == "whsec_second"
    assert read(uow, lambda tx: tx.webhooks.get_secret(OTHER)) is None


def test_a_secret_for_a_missing_account_is_not_kept(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.webhooks.set_secret("acct-none", "whsec_x"))

    assert read(uow, lambda tx: tx.webhooks.get_secret("acct-none")) is None


def test_due_answers_only_the_first_pending_delivery_of_each_run(uow: UnitOfWorkFactory) -> None:
    add(
        uow,
        delivery("a-2", due=0, run=("run-a", 2)),
        delivery("a-1", due=3, run=("run-a", 1)),  # retrying: due later than its successor
        delivery("a-3", due=0, run=("run-a", 3)),
        dataclasses.replace(delivery("b-1", due=0, run=("run-b", 1)), delivered_at=at(1)),
        delivery("b-2", due=1, run=("run-b", 2)),
        delivery("b-3", due=0, run=("run-b", 3)),
        delivery("unnumbered", due=2),
    )

    assert due(uow, now=2) == ["b-2", "unnumbered"]  # a-1 not yet due holds a-2 and a-3 back
    assert due(uow, now=3) == ["b-2", "unnumbered", "a-1"]


def test_a_failed_delivery_no_longer_holds_its_run_back(uow: UnitOfWorkFactory) -> None:
    add(
        uow,
        dataclasses.replace(delivery("a-1", due=0, run=("run-a", 1)), failed_at=at(1)),
        delivery("a-2", due=0, run=("run-a", 2)),
    )

    assert due(uow, now=1) == ["a-2"]


def test_a_claimed_delivery_holds_its_run_back(uow: UnitOfWorkFactory) -> None:
    """Claimed (pushed back while one sender sends it) is still pending: its successor waits
    for the delivered mark, whichever sender asks."""
    add(uow, delivery("a-1", due=0, run=("run-a", 1)), delivery("a-2", due=0, run=("run-a", 2)))
    with uow(write=True) as tx:
        (claimed,) = tx.webhooks.due(at(1), limit=10)
        claimed.next_attempt_at = at(120)
        tx.webhooks.update(claimed)
        tx.commit()

    assert due(uow, now=2) == []
    write(uow, lambda tx: tx.webhooks.update(dataclasses.replace(claimed, delivered_at=at(2))))
    assert due(uow, now=2) == ["a-2"]


def test_last_sequence_counts_a_run_s_deliveries(uow: UnitOfWorkFactory) -> None:
    add(uow, delivery("a-1", run=("run-a", 1)), delivery("a-2", run=("run-a", 2)), delivery("x"))

    assert read(uow, lambda tx: tx.webhooks.last_sequence("run-a")) == 2
    assert read(uow, lambda tx: tx.webhooks.last_sequence("run-b")) == 0


def test_one_sequence_number_of_a_run_is_stored_once(uow: UnitOfWorkFactory) -> None:
    add(uow, delivery("a-1", run=("run-a", 1)))

    with pytest.raises(Exception):  # noqa: B017,PT011 - IntegrityError in SQL, AssertionError in the fake
        add(uow, delivery("a-1-again", run=("run-a", 1)))
    assert [d.id for d in read(uow, lambda tx: tx.webhooks.list_for_account(ME))] == ["a-1"]
