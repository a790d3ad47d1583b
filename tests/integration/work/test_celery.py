"""LORAFORGE_QUEUE=celery: jobs travel through a real Redis to a real (embedded) Celery worker.

The worker runs the same ``Worker.run_subject`` as ``loraforge worker`` does, with fake ML;
the database decides who runs a job, so duplicate and lost messages are tested too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient

from loraforge.adapters.queue.celery_queue import CeleryJobQueue
from loraforge.app import create_app
from loraforge.bootstrap import Container, build, build_worker
from loraforge.services.worker import Worker
from loraforge.settings import Settings
from tests import imagefactory
from tests.integration.work.helpers import ManualClock
from tests.ml_fakes import FakeGenerator, FakeTrainer
from tests.redis_server import closed_port_url, redis_url

WAIT_S = 30.0


@dataclass
class CeleryWork:
    container: Container
    queue: CeleryJobQueue
    worker: Worker
    trainer: FakeTrainer
    client: TestClient
    headers: dict[str, str]
    clock: ManualClock

    def start_training(self) -> str:
        model_id = self.client.post(
            "/v1/models", json={"displayName": "m"}, headers=self.headers
        ).json()["id"]
        upload = self.client.post(
            f"/v1/models/{model_id}/data", content=imagefactory.png(48, 40), headers=self.headers
        )
        assert upload.status_code == 201, upload.text
        answer = self.client.post(
            f"/v1/models/{model_id}/trainings",
            json={"trainingStrength": 0, "trainingSpeed": "fast"},
            headers=self.headers,
        )
        assert answer.status_code == 201, answer.text
        training_id: str = answer.json()["trainingId"]
        return training_id

    def status(self, training_id: str) -> str:
        with self.container.uow() as uow:
            training = uow.trainings.get(training_id)
        assert training is not None
        return training.status.value


def _celery_settings(settings: Settings, broker: str) -> Settings:
    return settings.model_copy(
        update={
            "queue": "celery",
            "redis_url": broker,
            "celery_queue": f"lf-test-{uuid.uuid4().hex[:12]}",  # tests stay apart
            "job_lease_s": 30,
        }
    )


@pytest.fixture
def celery_work(settings: Settings) -> Iterator[CeleryWork]:
    clock = ManualClock()
    container = build(_celery_settings(settings, redis_url()), clock=clock)
    queue = container.queue
    assert isinstance(queue, CeleryJobQueue)
    trainer = FakeTrainer()
    worker = build_worker(container, trainer=trainer, generator=FakeGenerator(), owner="celery")
    queue.register(worker.run_subject)
    with TestClient(create_app(container=container)) as client:
        key = container.keys.create(name="t").plaintext
        yield CeleryWork(
            container=container,
            queue=queue,
            worker=worker,
            trainer=trainer,
            client=client,
            headers={"Authorization": f"Bearer {key}"},
            clock=clock,
        )
    with queue.app.connection_for_write() as connection:
        connection.default_channel.queue_delete(queue.app.conf.task_default_queue)
    container.close()


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT_S} s")
        time.sleep(0.05)


def test_a_training_started_through_the_api_runs_on_a_celery_worker(
    celery_work: CeleryWork,
) -> None:
    training_id = celery_work.start_training()
    assert celery_work.queue.backlog() == 1  # the message waits in Redis
    with start_worker(celery_work.queue.app, perform_ping_check=False):
        _eventually(lambda: celery_work.status(training_id) == "succeeded", "the training")
    assert celery_work.queue.backlog() == 0
    assert len(celery_work.trainer.specs) == 1


def test_a_duplicate_message_for_a_finished_job_does_nothing(celery_work: CeleryWork) -> None:
    training_id = celery_work.start_training()
    celery_work.queue.submit(training_id)  # e.g. redelivered after a worker restart
    with start_worker(celery_work.queue.app, perform_ping_check=False):
        _eventually(lambda: celery_work.queue.backlog() == 0, "both messages consumed")
        _eventually(lambda: celery_work.status(training_id) == "succeeded", "the training")
    assert len(celery_work.trainer.specs) == 1
    assert celery_work.worker.run_subject(training_id) is False


def test_a_job_whose_worker_died_is_handed_back_and_finished(celery_work: CeleryWork) -> None:
    training_id = celery_work.start_training()
    celery_work.queue.app.control.purge()  # its message is gone with the dead worker
    ghost = celery_work.container.jobs.claim("ghost", training_id)
    assert ghost is not None  # a worker took it, then died without a word
    assert celery_work.worker.requeue_stranded(queued_for_s=60) == 0  # its lease still runs
    celery_work.clock.advance(31)
    assert celery_work.worker.requeue_stranded(queued_for_s=60) == 1
    with start_worker(celery_work.queue.app, perform_ping_check=False):
        _eventually(lambda: celery_work.status(training_id) == "succeeded", "the takeover")
    with celery_work.container.uow() as uow:
        job = uow.jobs.for_subject(training_id)
    assert job is not None
    assert job.attempts == 2  # the dead attempt counts towards the limit


def test_a_lost_message_is_handed_over_again_only_while_the_queue_is_empty(
    celery_work: CeleryWork,
) -> None:
    waiting = celery_work.start_training()
    lost = celery_work.start_training()
    celery_work.queue.app.control.purge()  # Redis restarted without persistence
    celery_work.queue.submit(waiting)  # one message survived
    celery_work.clock.advance(120)
    assert celery_work.worker.requeue_stranded(queued_for_s=60) == 0  # a message still waits
    with start_worker(celery_work.queue.app, perform_ping_check=False):
        _eventually(lambda: celery_work.status(waiting) == "succeeded", "the waiting job")
        assert celery_work.status(lost) == "queued"
        _eventually(lambda: celery_work.queue.backlog() == 0, "an empty queue")
        assert celery_work.worker.requeue_stranded(queued_for_s=60) == 1
        _eventually(lambda: celery_work.status(lost) == "succeeded", "the lost job")
    assert celery_work.worker.requeue_stranded(queued_for_s=60) == 0  # nothing left over


def test_a_broker_that_is_down_does_not_fail_the_request(settings: Settings) -> None:
    container = build(_celery_settings(settings, closed_port_url()))
    try:
        with TestClient(create_app(container=container)) as client:
            key = container.keys.create(name="t").plaintext
            headers = {"Authorization": f"Bearer {key}"}
            created = client.post("/v1/models", json={"displayName": "m"}, headers=headers)
            model_id = created.json()["id"]
            body = imagefactory.png(40, 40)
            upload = client.post(f"/v1/models/{model_id}/data", content=body, headers=headers)
            assert upload.status_code == 201, upload.text
            answer = client.post(f"/v1/models/{model_id}/trainings", json={}, headers=headers)
            assert answer.status_code == 201, answer.text
            training_id = answer.json()["trainingId"]
        with container.uow() as uow:
            job = uow.jobs.for_subject(training_id)
        assert job is not None
        assert job.state.value == "queued"  # committed: a worker's requeue timer hands it over
    finally:
        container.close()
