"""Leases: a dead worker's job is taken over; a stale attempt cannot write; attempts run out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loraforge.bootstrap import Container, build, build_worker
from loraforge.domain.work import JobState
from loraforge.services.jobs import LeaseLost
from loraforge.settings import Settings
from tests.integration.work.helpers import ManualClock, queued_training
from tests.ml_fakes import FakeGenerator, FakeTrainer


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def leased(settings: Settings, clock: ManualClock) -> Iterator[Container]:
    container = build(
        settings.model_copy(update={"job_lease_s": 30, "job_max_attempts": 2}), clock=clock
    )
    yield container
    container.close()


def test_expired_lease_is_taken_over_and_the_stale_attempt_cannot_write(
    leased: Container, clock: ManualClock
) -> None:
    training_id = queued_training(leased)
    first = leased.jobs.claim("worker-a")
    assert first is not None
    assert leased.jobs.claim("worker-b") is None  # held
    clock.advance(31)
    second = leased.jobs.claim("worker-b")
    assert second is not None
    assert second.job.id == first.job.id
    assert second.job.attempts == 2
    assert second.token != first.token
    with pytest.raises(LeaseLost), leased.jobs.guarded(first):
        pass
    assert leased.jobs.heartbeat(first) is False
    assert leased.jobs.heartbeat(second) is True
    with leased.uow() as uow:
        training = uow.trainings.get(training_id)
    assert training is not None
    assert training.status.value == "queued"


def test_job_fails_with_a_reason_after_max_attempts(leased: Container, clock: ManualClock) -> None:
    training_id = queued_training(leased)
    for _ in range(2):
        assert leased.jobs.claim("dying-worker") is not None
        clock.advance(31)
    worker = build_worker(leased, trainer=FakeTrainer(), generator=FakeGenerator())
    assert worker.run_once() is False  # nothing left to run: the job was given up
    with leased.uow() as uow:
        training = uow.trainings.get(training_id)
        job = uow.jobs.for_subject(training_id)
    assert training is not None
    assert job is not None
    assert training.status.value == "failed"
    assert training.error is not None
    assert "2 attempts" in training.error
    assert job.state is JobState.DONE


def test_a_taken_over_training_resumes_from_its_checkpoint(
    leased: Container, clock: ManualClock, tmp_path: Path
) -> None:
    training_id = queued_training(leased)
    trainer = FakeTrainer()

    def die_after_checkpoint(step: int) -> None:
        if step == 60:  # fast plan checkpoints every 50 steps
            clock.advance(31)
            raise KeyboardInterrupt  # the process dies: nothing is written

    trainer.step_hook = die_after_checkpoint
    worker = build_worker(leased, trainer=trainer, generator=FakeGenerator(), owner="a")
    with pytest.raises(KeyboardInterrupt):
        worker.run_once()
    trainer.step_hook = None
    survivor = build_worker(leased, trainer=trainer, generator=FakeGenerator(), owner="b")
    assert survivor.run_once() is True
    assert trainer.started_from == [0, 50]
    with leased.uow() as uow:
        training = uow.trainings.get(training_id)
    assert training is not None
    assert training.status.value == "succeeded"
