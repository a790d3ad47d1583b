"""The job queue's state machine in the database: claim with a lease, heartbeat, finish.

Every write a worker makes about a job's subject goes through ``guarded``: it re-checks, in
the same transaction, that the worker still holds the lease (same token). A worker whose lease
expired, and whose job another worker took over, can no longer write anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

from loraforge.domain.errors import MlUnavailable
from loraforge.domain.work import RUN_KINDS, Job, JobKind, JobState
from loraforge.ports import Clock, IdFactory, UnitOfWork, UnitOfWorkFactory

# Run once the transaction that called a ``GiveUp`` has committed (removing blobs its rows
# no longer reference, say).
AfterCommit = Callable[[], object]

# Called with the subject id when a job runs out of attempts: marks the subject failed, and
# may return a step to run after the commit.
GiveUp = Callable[[UnitOfWork, str, str], AfterCommit | None]


class LeaseLost(Exception):
    """The worker no longer holds the job: another attempt owns it now."""


@dataclass(frozen=True)
class Lease:
    job: Job

    @property
    def token(self) -> str:
        assert self.job.lease_token is not None
        return self.job.lease_token


class JobService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        new_id: IdFactory,
        lease_s: float,
        max_attempts: int,
        unrunnable: str | None = None,
    ) -> None:
        """``unrunnable``: why no worker of this installation can run jobs (they lack the ML
        extra), or None; new jobs are then refused with it rather than queued forever."""
        self._uow = uow
        self._clock = clock
        self._new_id = new_id
        self._lease = timedelta(seconds=lease_s)
        self._max_attempts = max_attempts
        self._unrunnable = unrunnable
        self._give_up: dict[JobKind, GiveUp] = {}

    def on_give_up(self, kind: JobKind, handler: GiveUp) -> None:
        self._give_up[kind] = handler

    @property
    def runnable(self) -> bool:
        """Whether this installation's workers can run jobs at all (``unrunnable`` unset)."""
        return self._unrunnable is None

    def enqueue(self, uow: UnitOfWork, kind: JobKind, subject_id: str) -> Job:
        """Add a job inside the caller's transaction (it commits with the subject)."""
        if self._unrunnable is not None:
            raise MlUnavailable(self._unrunnable)
        now = self._clock.now()
        job = Job(
            id=self._new_id(),
            kind=kind,
            subject_id=subject_id,
            state=JobState.QUEUED,
            attempts=0,
            max_attempts=self._max_attempts,
            created_at=now,
            available_at=now,
        )
        uow.jobs.add(job)
        return job

    def claim(
        self,
        owner: str,
        subject_id: str | None = None,
        *,
        kinds: Collection[JobKind] | None = RUN_KINDS,
    ) -> Lease | None:
        """Take the next job of ``kinds`` (None: any; by default trainings and predictions),
        or ``subject_id``'s, or return None when there is none nobody holds. Jobs out of
        attempts are failed on the way."""
        while True:
            after: AfterCommit | None = None
            with self._uow(write=True) as uow:
                now = self._clock.now()
                job = uow.jobs.next_claimable(now, subject_id, kinds=kinds)
                if job is None:
                    return None
                previous = job.lease_token
                if job.attempts >= job.max_attempts:
                    after = self._exhaust(uow, job, previous)
                    uow.commit()
                else:
                    claimed = replace(
                        job,
                        state=JobState.RUNNING,
                        attempts=job.attempts + 1,
                        lease_owner=owner,
                        lease_token=str(uuid.uuid4()),
                        lease_expires_at=now + self._lease,
                    )
                    if uow.jobs.save(claimed, expected_token=previous):
                        uow.commit()
                        return Lease(claimed)
            if after is not None:  # once the transaction has ended
                after()

    def requeue_stranded(self, *, queued_for_s: float | None) -> list[str]:
        """Hand back to the queue the trainings and predictions no worker will otherwise run,
        for a queue that carries messages (Celery): running ones whose lease expired (their
        worker died) and, unless ``queued_for_s`` is None, queued ones last handed over longer
        ago than that (their message was lost). Each is marked queued and handed over now, so
        it is returned once per ``queued_for_s``. Returns their subject ids, oldest first."""
        with self._uow(write=True) as uow:
            now = self._clock.now()
            queued_before = None if queued_for_s is None else now - timedelta(seconds=queued_for_s)
            subjects = []
            for job in uow.jobs.stranded(now, queued_before=queued_before):
                if job.kind not in RUN_KINDS:
                    continue  # never a message: the workers' polling takes it over
                requeued = replace(
                    job,
                    state=JobState.QUEUED,
                    available_at=now,
                    lease_owner=None,
                    lease_token=None,
                    lease_expires_at=None,
                )
                if uow.jobs.save(requeued, expected_token=job.lease_token):
                    subjects.append(job.subject_id)
            uow.commit()
        return subjects

    def _exhaust(self, uow: UnitOfWork, job: Job, previous: str | None) -> AfterCommit | None:
        reason = (
            f"The worker stopped responding {job.attempts} times; giving up after "
            f"{job.max_attempts} attempts."
        )
        done = replace(job, state=JobState.DONE, lease_token=None, last_error=reason)
        if uow.jobs.save(done, expected_token=previous):
            return self._give_up[job.kind](uow, job.subject_id, reason)
        return None

    def heartbeat(self, lease: Lease) -> bool:
        """Extend the lease; False when it was lost (expired and taken over)."""
        try:
            with self.guarded(lease) as uow:
                uow.commit()
        except LeaseLost:
            return False
        return True

    @contextmanager
    def guarded(self, lease: Lease) -> Iterator[UnitOfWork]:
        """A write transaction that only proceeds while ``lease`` is held; extends it."""
        with self._uow(write=True) as uow:
            extended = replace(lease.job, lease_expires_at=self._clock.now() + self._lease)
            if not uow.jobs.save(extended, expected_token=lease.token):
                raise LeaseLost(f"Job {lease.job.id} is held by another attempt.")
            yield uow

    def complete(
        self, lease: Lease, record: Callable[[UnitOfWork], None], *, error: str | None = None
    ) -> bool:
        """Write the job's outcome (``record``) and mark it done, in one transaction, while
        the lease is held. False when the lease was lost: nothing was written."""
        try:
            with self.guarded(lease) as uow:
                record(uow)
                self.finish(uow, lease, error=error)
                uow.commit()
        except LeaseLost:
            return False
        return True

    def finish(self, uow: UnitOfWork, lease: Lease, *, error: str | None = None) -> None:
        """Mark the job done inside a ``guarded`` transaction."""
        done = replace(lease.job, state=JobState.DONE, lease_expires_at=None, last_error=error)
        uow.jobs.save(done, expected_token=lease.token)
