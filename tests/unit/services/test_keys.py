"""KeyService over in-memory fakes, and the failed-authentication limiter."""

from __future__ import annotations

import dataclasses
import hashlib
from types import SimpleNamespace

import pytest

from loraforge.domain.errors import NotFound, RateLimited, Unauthenticated
from loraforge.ports import UnitOfWorkFactory
from loraforge.services import keys as keys_module
from loraforge.services.keys import KEY_PREFIX, PREFIX_LEN, FailureLimiter, KeyService
from tests.fakes import FakeClock, FakeIds, FakeUnitOfWorkFactory


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> KeyService:
    port: UnitOfWorkFactory = uow
    return KeyService(uow=port, clock=clock, new_id=FakeIds("key"))


def test_created_key_authenticates_to_its_new_account(
    service: KeyService, uow: FakeUnitOfWorkFactory
) -> None:
    issued = service.create(name="laptop")
    assert issued.plaintext.startswith(KEY_PREFIX)
    assert issued.key.prefix == issued.plaintext[:PREFIX_LEN]
    principal = service.authenticate(issued.plaintext)
    assert principal.account_id == issued.key.account_id
    assert principal.key_id == issued.key.id
    assert set(uow.state.accounts) == {issued.key.account_id}


def test_keys_are_random_and_long(service: KeyService) -> None:
    a, b = service.create(name="a"), service.create(name="b")
    assert a.plaintext != b.plaintext
    assert len(a.plaintext) >= len(KEY_PREFIX) + 40  # 32 random bytes, url-safe base64


def test_key_is_never_stored_in_plaintext(service: KeyService, uow: FakeUnitOfWorkFactory) -> None:
    issued = service.create(name="secret")
    ((stored_key, stored_hash),) = uow.state.api_keys.values()
    assert stored_hash == hashlib.sha256(issued.plaintext.encode()).hexdigest()
    assert stored_hash != issued.plaintext
    secret_part = issued.plaintext[PREFIX_LEN:]
    for value in dataclasses.asdict(stored_key).values():
        assert secret_part not in str(value)
    assert secret_part not in repr(uow.state)


def test_second_key_for_an_existing_account(service: KeyService) -> None:
    first = service.create(name="first")
    second = service.create(name="second", account_id=first.key.account_id)
    assert service.authenticate(second.plaintext).account_id == first.key.account_id
    with pytest.raises(NotFound):
        service.create(name="orphan", account_id="no-such-account")


def test_revoked_key_fails_and_others_keep_working(
    service: KeyService, clock: FakeClock, uow: FakeUnitOfWorkFactory
) -> None:
    doomed = service.create(name="doomed")
    kept = service.create(name="kept", account_id=doomed.key.account_id)
    clock.advance(10)
    revoked = service.revoke(doomed.key.id)
    assert revoked.revoked_at == clock.now()
    assert not revoked.active
    with pytest.raises(Unauthenticated):
        service.authenticate(doomed.plaintext)
    assert service.authenticate(kept.plaintext).key_id == kept.key.id
    # Revoking again changes nothing, an unknown id is NotFound.
    clock.advance(10)
    assert service.revoke(doomed.key.id).revoked_at == revoked.revoked_at
    with pytest.raises(NotFound):
        service.revoke("no-such-key")
    stored = {k.id: k for k in service.list()}
    assert stored[doomed.key.id].revoked_at == revoked.revoked_at
    assert stored[kept.key.id].revoked_at is None
    assert uow.state.api_keys[doomed.key.id][0].revoked_at == revoked.revoked_at


@pytest.mark.parametrize(
    "presented",
    [
        None,
        "",
        "not-a-key",
        "Bearer lf_abc",
        KEY_PREFIX,
        KEY_PREFIX + "x" * 300,  # too long: refused before hashing
    ],
)
def test_malformed_keys_fail(service: KeyService, presented: str | None) -> None:
    service.create(name="real")
    with pytest.raises(Unauthenticated):
        service.authenticate(presented)


def test_unknown_key_with_a_known_prefix_fails(service: KeyService) -> None:
    issued = service.create(name="real")
    forged = issued.plaintext[:PREFIX_LEN] + "A" * (len(issued.plaintext) - PREFIX_LEN)
    assert forged != issued.plaintext
    with pytest.raises(Unauthenticated):
        service.authenticate(forged)
    with pytest.raises(Unauthenticated):
        service.authenticate(issued.plaintext + "x")
    with pytest.raises(Unauthenticated):
        service.authenticate(KEY_PREFIX + "unknownunknownunknownunknownunknown")


def test_list_is_in_creation_order(service: KeyService, clock: FakeClock) -> None:
    names = []
    for i in range(3):
        names.append(f"k{i}")
        service.create(name=f"k{i}")
        clock.advance(1)
    assert [k.name for k in service.list()] == names


# --- FailureLimiter ---------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    monkeypatch.setattr(keys_module, "time", SimpleNamespace(monotonic=fake))
    return fake


def test_limiter_blocks_after_max_failures(monotonic: FakeMonotonic) -> None:
    limiter = FailureLimiter(max_failures=3, window_s=60)
    for _ in range(3):
        limiter.check("1.2.3.4")
        limiter.record_failure("1.2.3.4")
        monotonic.now += 10
    with pytest.raises(RateLimited) as caught:
        limiter.check("1.2.3.4")
    # The oldest failure (at 1000) leaves the window at 1060; now is 1030.
    assert caught.value.retry_after == 31
    assert caught.value.code == "rate_limited"
    limiter.check("5.6.7.8")  # other clients are not affected


def test_limiter_forgets_failures_outside_the_window(monotonic: FakeMonotonic) -> None:
    limiter = FailureLimiter(max_failures=2, window_s=60)
    limiter.record_failure("c")
    monotonic.now += 30
    limiter.record_failure("c")
    with pytest.raises(RateLimited):
        limiter.check("c")
    monotonic.now += 31  # the first failure is now 61 s old
    limiter.check("c")
    limiter.record_failure("c")
    with pytest.raises(RateLimited):
        limiter.check("c")
    monotonic.now += 61
    limiter.check("c")


def test_retry_after_is_at_least_one_second(monotonic: FakeMonotonic) -> None:
    limiter = FailureLimiter(max_failures=1, window_s=60)
    limiter.record_failure("c")
    monotonic.now += 59.999
    with pytest.raises(RateLimited) as caught:
        limiter.check("c")
    assert caught.value.retry_after >= 1


def test_successful_clients_leave_no_trace(monotonic: FakeMonotonic) -> None:
    """Memory stays bounded: only clients with failures in the window are remembered."""
    limiter = FailureLimiter(max_failures=3, window_s=60)
    for n in range(20_000):
        limiter.check(f"10.0.{n // 256}.{n % 256}")
    assert limiter._failures == {}
    limiter.record_failure("bad")
    limiter.check("bad")
    assert set(limiter._failures) == {"bad"}
    monotonic.now += 61
    limiter.check("bad")  # the failure expired: the entry goes
    assert limiter._failures == {}


def test_auth_cache_skips_the_database_and_an_in_process_revoke_clears_it(
    uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    port: UnitOfWorkFactory = uow
    cached = KeyService(uow=port, clock=clock, new_id=FakeIds("key"), cache_s=60)
    issued = cached.create(name="laptop")
    principal = cached.authenticate(issued.plaintext)
    uow.down = True  # a cached key needs no database
    assert cached.authenticate(issued.plaintext) == principal
    uow.down = False
    cached.revoke(issued.key.id)
    with pytest.raises(Unauthenticated):
        cached.authenticate(issued.plaintext)


# --- what a rejected key costs ----------------------------------------------------------


def test_malformed_keys_are_refused_without_touching_the_database(
    service: KeyService, uow: FakeUnitOfWorkFactory
) -> None:
    issued = service.create(name="k")
    opened = len(uow.opened)
    for presented in ("lf_short", issued.plaintext + "x", issued.plaintext[:-1] + "!", "x" * 46):
        with pytest.raises(Unauthenticated):
            service.authenticate(presented)
    assert len(uow.opened) == opened


def test_a_well_formed_key_that_failed_is_not_looked_up_again(
    service: KeyService, uow: FakeUnitOfWorkFactory
) -> None:
    issued = service.create(name="k")
    guess = issued.plaintext[:-1] + ("A" if issued.plaintext[-1] != "A" else "B")
    opened = len(uow.opened)
    for _ in range(50):
        with pytest.raises(Unauthenticated):
            service.authenticate(guess)
    assert len(uow.opened) == opened + 1  # one lookup, then remembered
    assert service.authenticate(issued.plaintext).key_id == issued.key.id  # the real key passes


def test_a_revoked_key_stays_refused(service: KeyService) -> None:
    issued = service.create(name="k")
    service.revoke(issued.key.id)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            service.authenticate(issued.plaintext)


def test_limiter_checks_every_name_and_bounds_memory(monotonic: FakeMonotonic) -> None:
    limiter = FailureLimiter(max_failures=2, window_s=60, max_names=100)
    limiter.record_failure("address:a", "prefix:p")
    limiter.record_failure("address:b", "prefix:p")
    limiter.check("address:a", "prefix:q")  # each address has one failure: fine
    with pytest.raises(RateLimited):
        limiter.check("address:c", "prefix:p")  # the prefix has two
    for n in range(1000):  # a spray of names inside one window
        limiter.record_failure(f"address:{n}")
    assert len(limiter._failures) <= 100
    for _ in range(1000):  # one name failing on and on keeps a bounded list
        limiter.record_failure("address:z")
    assert len(limiter._failures["address:z"]) == 2
