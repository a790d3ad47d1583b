"""JobRepository: which job a worker may claim, which ones nobody works on, and the lease
token that fences every write."""

from __future__ import annotations

import dataclasses
import threading

from loraforge.domain.work import RUN_KINDS, Job, JobKind, JobState
from loraforge.ports import UnitOfWorkFactory
from tests.integration.repositories.entities import at, job, read, write

QUEUED, RUNNING, DONE = JobState.QUEUED, JobState.RUNNING, JobState.DONE


def add(uow: UnitOfWorkFactory, *jobs: Job) -> None:
    write(uow, *(lambda tx, j=j: tx.jobs.add(j) for j in jobs))


def claimable(uow: UnitOfWorkFactory, now: float, subject_id: str | None = None) -> str | None:
    with uow(write=True) as tx:
        found = tx.jobs.next_claimable(at(now), subject_id)
    return found.id if found else None


def test_for_subject_finds_the_subject_s_job(uow: UnitOfWorkFactory) -> None:
    add(uow, job("j-1", "tr-1"), job("j-2", "tr-2"))

    assert read(uow, lambda tx: tx.jobs.for_subject("tr-2")) == job("j-2", "tr-2")
    assert read(uow, lambda tx: tx.jobs.for_subject("tr-missing")) is None


def test_the_oldest_available_queued_job_is_claimed_first(uow: UnitOfWorkFactory) -> None:
    add(
        uow,
        job("j-later", "s-1", t=0, available=5),
        job("j-young", "s-2", t=2, available=2),
        job("j-old", "s-3", t=1, available=2),  # same availability: the older one
        job("j-future", "s-4", t=0, available=50),
    )

    assert claimable(uow, now=1) is None
    assert claimable(uow, now=2) == "j-old"
    assert claimable(uow, now=2, subject_id="s-2") == "j-young"
    assert claimable(uow, now=5, subject_id="s-4") is None  # not available yet
    assert claimable(uow, now=50, subject_id="s-4") == "j-future"
    assert claimable(uow, now=50, subject_id="s-missing") is None


def test_claims_can_be_limited_to_some_kinds(uow: UnitOfWorkFactory) -> None:
    add(
        uow,
        job("j-inspect", "img-1", t=0, kind=JobKind.INSPECTION),
        job("j-train", "tr-1", t=1),
        job("j-predict", "pr-1", t=2, kind=JobKind.PREDICTION),
    )

    def first(kinds: set[JobKind] | None, subject_id: str | None = None) -> str | None:
        with uow(write=True) as tx:
            found = tx.jobs.next_claimable(at(5), subject_id, kinds=kinds)
        return found.id if found else None

    assert first(None) == "j-inspect"  # any kind: the oldest
    assert first(set(RUN_KINDS)) == "j-train"
    assert first({JobKind.PREDICTION}) == "j-predict"
    assert first({JobKind.INSPECTION}, "tr-1") is None
    assert first({JobKind.INSPECTION}, "img-1") == "j-inspect"


def test_a_running_job_is_claimable_once_its_lease_expired(uow: UnitOfWorkFactory) -> None:
    add(
        uow,
        job("j-running", "s-1", state=RUNNING, lease_until=10, token="t-1"),
        job("j-done", "s-2", state=DONE, token=None),
    )

    assert claimable(uow, now=10) is None  # the lease runs until 10 inclusive
    assert claimable(uow, now=10.5) == "j-running"
    assert claimable(uow, now=10.5, subject_id="s-2") is None  # done: never again


def test_stranded_answers_expired_leases_and_long_queued_jobs(uow: UnitOfWorkFactory) -> None:
    add(
        uow,
        job("j-lost", "s-1", state=RUNNING, t=3, available=3, lease_until=9, token="t-1"),
        job("j-held", "s-2", state=RUNNING, lease_until=20, token="t-2"),
        job("j-waiting", "s-3", t=1, available=1),
        job("j-fresh", "s-4", t=8, available=8),
        job("j-done", "s-5", state=DONE),
    )

    def stranded(queued_before: float | None) -> list[str]:
        before = None if queued_before is None else at(queued_before)
        with uow(write=True) as tx:
            return [j.id for j in tx.jobs.stranded(at(10), queued_before=before)]

    assert stranded(None) == ["j-lost"]
    assert stranded(5) == ["j-waiting", "j-lost"]  # by availability
    assert stranded(1) == ["j-lost"]  # queued strictly before


def test_save_writes_only_while_the_token_matches(uow: UnitOfWorkFactory) -> None:
    add(uow, job("j-1", "s-1"))
    claimed = dataclasses.replace(
        job("j-1", "s-1"),
        state=RUNNING,
        attempts=1,
        lease_owner="worker-a",
        lease_token="t-1",
        lease_expires_at=at(30),
        last_error="before",
    )

    with uow(write=True) as tx:
        assert tx.jobs.save(claimed, expected_token="t-other") is False
        assert tx.jobs.save(claimed, expected_token=None) is True  # a queued job holds none
        assert tx.jobs.save(claimed, expected_token=None) is False  # now it holds t-1
        assert tx.jobs.save(dataclasses.replace(claimed, id="j-missing"), expected_token=None) is (
            False
        )
        tx.commit()

    assert read(uow, lambda tx: tx.jobs.for_subject("s-1")) == claimed
    done = dataclasses.replace(claimed, state=DONE, lease_token=None, last_error=None)
    with uow(write=True) as tx:
        assert tx.jobs.save(done, expected_token="t-1") is True
        tx.commit()
    assert read(uow, lambda tx: tx.jobs.for_subject("s-1")) == done


def test_a_job_being_claimed_is_not_handed_to_a_concurrent_claimer(
    uow: UnitOfWorkFactory,
) -> None:
    add(uow, job("j-1", "s-1"))
    seen: list[str | None] = []
    with uow(write=True) as tx:
        first = tx.jobs.next_claimable(at(1))
        assert first is not None
        claimed = dataclasses.replace(
            first, state=RUNNING, lease_token="t-1", lease_expires_at=at(30)
        )
        assert tx.jobs.save(claimed, expected_token=None)
        # PostgreSQL skips the locked row at once; SQLite and the fake make the second
        # claimer wait for this transaction, after which the job is no longer queued.
        rival = threading.Thread(target=lambda: seen.append(claimable(uow, now=1)))
        rival.start()
        rival.join(timeout=0.3)
        tx.commit()
    rival.join()

    assert seen == [None]
