"""Celery over Redis: the message carries a job's subject id to any worker on any machine.

The jobs table stays the source of truth. A task only says "look at this subject's job": the
worker claims it with a lease in the database (a duplicate or late message finds it done or
held and does nothing), and a timer in every worker hands back jobs whose worker died or whose
message was lost (``Worker.requeue_stranded``), so Redis may lose messages without losing jobs.

Workers run one task at a time in their own process (the solo pool), since one training or
generation already uses every core and keeps base pipelines resident. Tasks are acknowledged
late, so a message whose worker died is delivered again after the visibility timeout (and at
once under a prefork pool, with ``reject_on_worker_lost``); the requeue timer usually hands
the job over sooner, after its lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

from loraforge.ports import JobWorker

log = logging.getLogger("loraforge.queue")

RUN_JOB = "loraforge.run_job"


def make_app(broker_url: str, queue: str) -> Celery:
    app = Celery("loraforge", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # A message whose worker vanished comes back after this long even without a
        # reject; duplicates are harmless (the lease decides who runs a job).
        broker_transport_options={"visibility_timeout": 3600},
    )
    return app


class CeleryJobQueue:
    def __init__(
        self,
        broker_url: str,
        *,
        queue: str = "loraforge",
        requeue_every_s: float = 30.0,
        loglevel: str = "info",
    ) -> None:
        """``requeue_every_s``: how often a worker hands stranded jobs back (``run_worker``)."""
        self.app = make_app(broker_url, queue)
        self._queue = queue
        self._requeue_every_s = requeue_every_s
        self._loglevel = loglevel

    def submit(self, subject_id: str) -> None:
        """Publish the job; a broker that is down is logged, not raised: the job is already
        committed, and the workers' requeue timer hands it over once the broker is back."""
        try:
            self.app.send_task(
                RUN_JOB,
                args=[subject_id],
                queue=self._queue,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.5},
            )
        except Exception:
            log.warning("could not publish job %s; it will be requeued", subject_id, exc_info=True)

    def wait(self, timeout: float) -> None:
        threading.Event().wait(timeout)  # Celery workers are woken by the broker, not by us

    def backlog(self) -> int:
        with self.app.connection_for_read() as connection:
            # Not passive: Redis forgets an empty queue, and declaring one is idempotent.
            declared = connection.default_channel.queue_declare(self._queue)
            return int(declared.message_count)

    def register(self, run: Callable[[str], object]) -> None:
        """Define the task that runs a job: ``run(subject_id)`` in this process."""

        def run_job(subject_id: str) -> None:
            run(subject_id)

        # shared=False: by default Celery adds a task to every app in the process.
        self.app.task(name=RUN_JOB, shared=False)(run_job)

    def run_worker(self, worker: JobWorker, stop: threading.Event) -> None:
        """Consume tasks until SIGTERM/SIGINT, with the worker's side duties on a thread of
        their own; ``stop`` is set when the consumer stops."""
        self.register(worker.run_subject)
        duties = threading.Thread(
            target=worker.serve_side_duties,
            args=(stop,),
            kwargs={"requeue_every_s": self._requeue_every_s},
            name="worker-duties",
            daemon=True,
        )
        duties.start()
        try:
            self.serve()
        finally:
            stop.set()
            duties.join(timeout=10)

    def worker_options(self) -> dict[str, Any]:
        return {
            "queues": [self._queue],
            "hostname": f"loraforge-{os.getpid()}@{socket.gethostname()}",  # one per process
            "pool": "solo",
            "concurrency": 1,
            "loglevel": self._loglevel.upper(),
            "without_gossip": True,
            "without_mingle": True,
        }

    def serve(self) -> None:
        """Consume tasks until SIGTERM/SIGINT (Celery's warm shutdown: the running job ends)."""
        self.app.Worker(**self.worker_options()).start()
