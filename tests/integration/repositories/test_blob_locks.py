"""BlobLockRepository, as far as one process sees it: a key held by one write transaction is
not held by another until the first ends (PostgreSQL's advisory locks; SQLite's and the fake's
single writer)."""

from __future__ import annotations

import threading

from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import blob_key

KEYS = [blob_key("a"), blob_key("b")]


def test_a_write_transaction_takes_free_keys(uow: UnitOfWorkFactory) -> None:
    with uow(write=True) as tx:
        tx.blob_locks.lock(KEYS[:1])
        assert tx.blob_locks.try_lock(KEYS) == set(KEYS)
        assert tx.blob_locks.try_lock([]) == set()
        tx.commit()

    with uow(write=True) as tx:  # released when the transaction ended
        assert tx.blob_locks.try_lock(KEYS) == set(KEYS)


def test_lock_waits_for_the_holder_to_end(uow: UnitOfWorkFactory) -> None:
    holder_ended = threading.Event()
    seen: list[bool] = []

    def rival() -> None:
        with uow(write=True) as tx:
            tx.blob_locks.lock(KEYS)
            seen.append(holder_ended.is_set())

    with uow(write=True) as tx:
        tx.blob_locks.lock(KEYS)
        thread = threading.Thread(target=rival)
        thread.start()
        thread.join(timeout=0.3)
        assert thread.is_alive()
        holder_ended.set()
        tx.commit()
    thread.join()

    assert seen == [True]


def test_try_lock_never_takes_a_held_key(uow: UnitOfWorkFactory) -> None:
    holder_ended = threading.Event()
    seen: list[tuple[set[str], bool]] = []

    def rival() -> None:
        with uow(write=True) as tx:
            seen.append((tx.blob_locks.try_lock(KEYS), holder_ended.is_set()))

    with uow(write=True) as tx:
        tx.blob_locks.lock(KEYS[:1])
        thread = threading.Thread(target=rival)
        thread.start()
        thread.join(timeout=0.3)
        holder_ended.set()
        tx.commit()
    thread.join()

    ((held, after_holder),) = seen
    assert KEYS[0] not in held or after_holder
    assert KEYS[1] in held
