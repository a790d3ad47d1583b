"""AccountRepository and ApiKeyRepository."""

from __future__ import annotations

import dataclasses

from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import (
    ME,
    OTHER,
    account,
    api_key,
    at,
    read,
    seed,
    write,
)


def test_account_round_trip(uow: UnitOfWorkFactory) -> None:
    write(uow, lambda tx: tx.accounts.add(account(ME)))

    assert read(uow, lambda tx: tx.accounts.get(ME)) == account(ME)
    assert read(uow, lambda tx: tx.accounts.get("acct-missing")) is None


def test_key_round_trip(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(uow, lambda tx: tx.api_keys.add(api_key("key-1"), key_hash="h" * 64))

    assert read(uow, lambda tx: tx.api_keys.get("key-1")) == api_key("key-1")
    assert read(uow, lambda tx: tx.api_keys.get("key-missing")) is None


def test_find_by_prefix_answers_each_matching_key_with_its_hash(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(
        uow,
        lambda tx: tx.api_keys.add(api_key("key-1", prefix="lf_same"), key_hash="1" * 64),
        lambda tx: tx.api_keys.add(api_key("key-2", OTHER, prefix="lf_same"), key_hash="2" * 64),
        lambda tx: tx.api_keys.add(api_key("key-3", prefix="lf_else"), key_hash="3" * 64),
    )

    found = read(uow, lambda tx: tx.api_keys.find_by_prefix("lf_same"))

    assert sorted(found, key=lambda pair: pair[0].id) == [
        (api_key("key-1", prefix="lf_same"), "1" * 64),
        (api_key("key-2", OTHER, prefix="lf_same"), "2" * 64),
    ]
    assert read(uow, lambda tx: tx.api_keys.find_by_prefix("lf_none")) == []


def test_list_holds_every_account_s_keys_oldest_first(uow: UnitOfWorkFactory) -> None:
    seed(uow)
    write(
        uow,
        lambda tx: tx.api_keys.add(api_key("key-b", t=5), key_hash="b" * 64),
        lambda tx: tx.api_keys.add(api_key("key-c", OTHER, t=1), key_hash="c" * 64),
        lambda tx: tx.api_keys.add(api_key("key-a", t=5), key_hash="a" * 64),  # same time: by id
    )

    listed = read(uow, lambda tx: tx.api_keys.list())

    assert [k.id for k in listed] == ["key-c", "key-a", "key-b"]


def test_update_writes_what_may_change_and_keeps_the_key_s_identity(
    uow: UnitOfWorkFactory,
) -> None:
    seed(uow)
    write(uow, lambda tx: tx.api_keys.add(api_key("key-1"), key_hash="h" * 64))
    changed = dataclasses.replace(
        api_key("key-1"), name="renamed", revoked_at=at(10), last_used_at=at(9)
    )
    rewritten = dataclasses.replace(changed, account_id=OTHER, prefix="lf_zzzz", created_at=at(7))

    write(uow, lambda tx: tx.api_keys.update(rewritten))

    assert read(uow, lambda tx: tx.api_keys.get("key-1")) == changed
    assert read(uow, lambda tx: tx.api_keys.find_by_prefix("lf_aaaa")) == [(changed, "h" * 64)]
