"""JobService over in-memory fakes: enqueue with the subject, claim with a lease, heartbeat,
fenced writes, take-over of a dead worker's job, giving up, and re-handing stranded jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from loraforge.domain.entities import Account
from loraforge.domain.work import Job, JobKind, JobState
from loraforge.ports import UnitOfWork, UnitOfWorkFactory
from loraforge.services.jobs import JobService, Lease, LeaseLost
from tests.fakes import EPOCH, FakeClock, FakeIds, FakeUnitOfWorkFactory

LEASE_S = 30


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def given_up() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def jobs(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, given_up: list[tuple[str, str]]
) -> JobService:
    port: UnitOfWorkFactory = uow
    service = JobService(
        uow=port, clock=clock, new_id=FakeIds("job"), lease_s=LEASE_S, max_attempts=2
    )

    def give_up(tx: UnitOfWork, subject_id: str, reason: str) -> None:
        given_up.append((subject_id, reason))
        tx.accounts.add(Account(id=f"gave-up-{subject_id}", name=reason, created_at=EPOCH))

    service.on_give_up(JobKind.TRAINING, give_up)
    return service


def enqueue(uow: FakeUnitOfWorkFactory, jobs: JobService, *subjects: str) -> list[Job]:
    with uow(write=True) as tx:
        added = [jobs.enqueue(tx, JobKind.TRAINING, s) for s in subjects]
        tx.commit()
    return added


def stored(uow: FakeUnitOfWorkFactory, subject_id: str) -> Job:
    with uow() as tx:
        job = tx.jobs.for_subject(subject_id)
    assert job is not None
    return job


def claim(jobs: JobService, owner: str, subject_id: str | None = None) -> Lease:
    lease = jobs.claim(owner, subject_id)
    assert lease is not None
    return lease


def test_a_job_is_added_in_the_caller_s_transaction(
    jobs: JobService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    with uow(write=True) as tx:
        job = jobs.enqueue(tx, JobKind.PREDICTION, "p-1")
    assert uow.state.jobs == {}  # the caller did not commit: no job either

    with uow(write=True) as tx:
        job = jobs.enqueue(tx, JobKind.PREDICTION, "p-1")
        tx.commit()

    assert uow.state.jobs == {job.id: job}
    assert (job.kind, job.subject_id, job.state) == (JobKind.PREDICTION, "p-1", JobState.QUEUED)
    assert (job.attempts, job.max_attempts) == (0, 2)
    assert job.created_at == job.available_at == clock.now()
    assert job.lease_token is None


def test_claim_leases_the_oldest_job_once(
    jobs: JobService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    enqueue(uow, jobs, "tr-1")
    clock.advance(1)
    enqueue(uow, jobs, "tr-2")

    first = claim(jobs, "worker-a")
    second = claim(jobs, "worker-b")

    assert (first.job.subject_id, second.job.subject_id) == ("tr-1", "tr-2")
    assert jobs.claim("worker-c") is None
    assert first.job.state is JobState.RUNNING
    assert first.job.attempts == 1
    assert first.job.lease_owner == "worker-a"
    assert first.job.lease_expires_at == clock.now() + timedelta(seconds=LEASE_S)
    assert first.token != second.token
    assert stored(uow, "tr-1") == first.job


def test_claim_for_a_subject_takes_only_its_job(
    jobs: JobService, uow: FakeUnitOfWorkFactory
) -> None:
    enqueue(uow, jobs, "tr-1", "tr-2")

    assert claim(jobs, "worker-a", "tr-2").job.subject_id == "tr-2"
    assert jobs.claim("worker-a", "tr-2") is None
    assert jobs.claim("worker-a", "tr-missing") is None
    assert stored(uow, "tr-1").state is JobState.QUEUED


def test_an_expired_lease_is_taken_over_and_the_stale_attempt_cannot_write(
    jobs: JobService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    enqueue(uow, jobs, "tr-1")
    first = claim(jobs, "worker-a")
    assert jobs.claim("worker-b") is None  # held
    clock.advance(LEASE_S + 1)

    second = claim(jobs, "worker-b")

    assert second.job.id == first.job.id
    assert second.job.attempts == 2
    assert second.token != first.token
    with pytest.raises(LeaseLost), jobs.guarded(first):
        pass
    assert jobs.heartbeat(first) is False
    assert jobs.heartbeat(second) is True
    assert stored(uow, "tr-1").lease_owner == "worker-b"


def test_a_heartbeat_extends_the_lease(
    jobs: JobService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    enqueue(uow, jobs, "tr-1")
    lease = claim(jobs, "worker-a")
    clock.advance(20)

    assert jobs.heartbeat(lease) is True
    clock.advance(LEASE_S)  # past the first lease, within the extended one
    assert jobs.claim("worker-b") is None
    assert stored(uow, "tr-1").lease_expires_at == EPOCH + timedelta(seconds=20 + LEASE_S)
    clock.advance(1)
    assert claim(jobs, "worker-b").job.attempts == 2


def test_a_guarded_transaction_writes_only_while_the_lease_is_held(
    jobs: JobService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    enqueue(uow, jobs, "tr-1")
    lease = claim(jobs, "worker-a")
    clock.advance(10)

    with jobs.guarded(lease) as tx:
        tx.accounts.add(Account(id="written", name="w", created_at=EPOCH))
        tx.commit()

    assert "written" in uow.state.accounts
    assert stored(uow, "tr-1").lease_expires_at == clock.now() + timedelta(seconds=LEASE_S)


def test_complete_records_the_outcome_and_finishes_the_job(
    jobs: JobService, uow: FakeUnitOfWorkFactory
) -> None:
    enqueue(uow, jobs, "tr-1")
    lease = claim(jobs, "worker-a")

    def record(tx: UnitOfWork) -> None:
        tx.accounts.add(Account(id="outcome", name="o", created_at=EPOCH))

    assert jobs.complete(lease, record, error="it broke") is True

    job = stored(uow, "tr-1")
    assert (job.state, job.last_error, job.lease_expires_at) == (JobState.DONE, "it broke", None)
    assert "outcome" in uow.state.accounts
    assert jobs.claim("worker-b") is None  # done: never claimed again


def test_complete_after_a_lost_lease_writes_nothing(
    jobs: JobService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    enqueue(uow, jobs, "tr-1")
    lost = claim(jobs, "worker-a")
    clock.advance(LEASE_S + 1)
    taken = claim(jobs, "worker-b")
    recorded: list[str] = []

    assert jobs.complete(lost, lambda tx: recorded.append("called")) is False

    assert recorded == []
    assert stored(uow, "tr-1") == taken.job


def test_finish_inside_a_guarded_transaction(jobs: JobService, uow: FakeUnitOfWorkFactory) -> None:
    enqueue(uow, jobs, "tr-1")
    lease = claim(jobs, "worker-a")

    with jobs.guarded(lease) as tx:
        jobs.finish(tx, lease)
        tx.commit()

    job = stored(uow, "tr-1")
    assert (job.state, job.last_error, job.lease_expires_at) == (JobState.DONE, None, None)


def test_a_job_out_of_attempts_is_given_up_with_a_reason(
    jobs: JobService,
    uow: FakeUnitOfWorkFactory,
    clock: FakeClock,
    given_up: list[tuple[str, str]],
) -> None:
    enqueue(uow, jobs, "tr-dying")
    for _ in range(2):
        claim(jobs, "dying-worker")
        clock.advance(LEASE_S + 1)
    enqueue(uow, jobs, "tr-next")

    assert claim(jobs, "worker").job.subject_id == "tr-next"  # the dead one failed on the way

    ((subject, reason),) = given_up
    assert subject == "tr-dying"
    assert "2 attempts" in reason
    job = stored(uow, "tr-dying")
    assert (job.state, job.last_error, job.lease_token) == (JobState.DONE, reason, None)
    assert "gave-up-tr-dying" in uow.state.accounts  # the handler's writes commit with it
    assert jobs.claim("worker") is None
    assert len(given_up) == 1


def test_stranded_jobs_are_handed_back_once_per_window(
    jobs: JobService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    enqueue(uow, jobs, "tr-lost-message")
    clock.advance(1)
    enqueue(uow, jobs, "tr-dead-worker")
    dead = claim(jobs, "worker-a", "tr-dead-worker")
    clock.advance(LEASE_S + 1)
    enqueue(uow, jobs, "tr-fresh")

    assert jobs.requeue_stranded(queued_for_s=None) == ["tr-dead-worker"]
    assert jobs.requeue_stranded(queued_for_s=None) == []
    requeued = stored(uow, "tr-dead-worker")
    assert (requeued.state, requeued.available_at) == (JobState.QUEUED, clock.now())
    assert (requeued.lease_owner, requeued.lease_token, requeued.lease_expires_at) == (
        None,
        None,
        None,
    )
    assert jobs.heartbeat(dead) is False  # its old lease is gone

    clock.advance(10)
    assert jobs.requeue_stranded(queued_for_s=10) == ["tr-lost-message"]  # queued 42 s ago
    assert jobs.requeue_stranded(queued_for_s=10) == []  # handed over again just now
    clock.advance(11)
    assert jobs.requeue_stranded(queued_for_s=10) == [
        "tr-dead-worker",
        "tr-fresh",
        "tr-lost-message",
    ]


def test_a_requeued_job_keeps_counting_its_attempts(
    jobs: JobService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    enqueue(uow, jobs, "tr-1")
    claim(jobs, "worker-a")
    clock.advance(LEASE_S + 1)
    jobs.requeue_stranded(queued_for_s=None)

    assert claim(jobs, "worker-b").job.attempts == 2
