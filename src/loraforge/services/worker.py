"""The worker loop: claim a job, run it while a heartbeat keeps the lease, repeat.

The same handlers run under the in-process worker (``run_forever``: poll the database) and
under Celery (``run_subject`` per task, ``requeue_stranded`` on a timer): a job is an id, the
handler reloads everything from the database.

Trainings and predictions (``RUN_KINDS``) run one at a time; the quick jobs (measuring a new
training image) are never queue messages: a loop of its own beside them, in every worker
process, polls the jobs table for them, so they never wait for a training.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from typing import Protocol

from loraforge.domain.work import RUN_KINDS, JobKind
from loraforge.ports import JobQueue, UnitOfWork
from loraforge.services.jobs import AfterCommit, JobService, Lease
from loraforge.services.webhooks import WebhookService

log = logging.getLogger("loraforge.worker")


class JobHandler(Protocol):
    kind: JobKind

    def run(self, lease: Lease, lost: Callable[[], bool]) -> None:
        """Do the job; write results only through ``JobService.guarded``."""
        ...

    def give_up(self, uow: UnitOfWork, subject_id: str, reason: str) -> AfterCommit | None:
        """Mark the subject failed: the job ran out of attempts. May return a step to run
        once that is committed."""
        ...


class Worker:
    def __init__(
        self,
        *,
        jobs: JobService,
        handlers: list[JobHandler],
        webhooks: WebhookService,
        queue: JobQueue,
        owner: str,
        poll_s: float = 0.5,
        heartbeat_s: float = 5.0,
    ) -> None:
        self._jobs = jobs
        self._handlers = {h.kind: h for h in handlers}
        for handler in handlers:
            jobs.on_give_up(handler.kind, handler.give_up)
        self._webhooks = webhooks
        self._queue = queue
        self._owner = owner
        self._poll_s = poll_s
        self._heartbeat_s = heartbeat_s

    def run_once(self, kinds: Collection[JobKind] = RUN_KINDS) -> bool:
        """Run the next job of ``kinds`` if there is one; True when a job was run."""
        lease = self._jobs.claim(self._owner, kinds=kinds)
        if lease is None:
            return False
        self._run(lease)
        return True

    def run_subject(self, subject_id: str) -> bool:
        """Run the job of this training or prediction unless it is done or another worker
        holds it (a duplicate message); True when it was run."""
        lease = self._jobs.claim(self._owner, subject_id)
        if lease is None:
            return False
        self._run(lease)
        return True

    def requeue_stranded(self, *, queued_for_s: float) -> int:
        """Hand jobs whose worker died, or whose message was lost, back to the queue.

        Queued jobs are only handed over again while the queue holds no message: a message
        still waiting means workers are busy, not that one was lost.
        """
        waiting = queued_for_s if self._queue.backlog() == 0 else None
        subjects = self._jobs.requeue_stranded(queued_for_s=waiting)
        for subject_id in subjects:
            self._queue.submit(subject_id)
        if subjects:
            log.warning("handed %d stranded job(s) back to the queue", len(subjects))
        return len(subjects)

    def _run(self, lease: Lease) -> None:
        lost = threading.Event()
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(lease, lost, done), name="heartbeat", daemon=True
        )
        beat.start()
        try:
            self._handlers[lease.job.kind].run(lease, lost.is_set)
        except Exception:
            log.exception("job %s (%s) failed", lease.job.id, lease.job.kind.value)
        finally:
            done.set()
            beat.join()

    def _heartbeat(self, lease: Lease, lost: threading.Event, done: threading.Event) -> None:
        while not done.wait(self._heartbeat_s):
            try:
                if not self._jobs.heartbeat(lease):
                    lost.set()
                    return
            except Exception:  # a database blip: the next beat tries again
                log.warning("heartbeat for job %s failed", lease.job.id, exc_info=True)

    def run_forever(self, stop: threading.Event) -> None:
        sender = threading.Thread(target=self._deliver_webhooks, args=(stop,), daemon=True)
        sender.start()
        quick = threading.Thread(target=self._run_quick_jobs, args=(stop,), daemon=True)
        quick.start()
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker loop error")
                worked = False
            if not worked:
                self._queue.wait(self._poll_s)
        sender.join(timeout=5)
        quick.join(timeout=5)

    def _run_quick_jobs(self, stop: threading.Event) -> None:
        """Beside the trainings and predictions: the jobs that are neither, found by polling
        the database (not the queue's wake-up, which the loop that runs trainings waits on)."""
        quick = frozenset(self._handlers) - RUN_KINDS
        while not stop.is_set():
            try:
                worked = bool(quick) and self.run_once(quick)
            except Exception:
                log.exception("worker loop error (quick jobs)")
                worked = False
            if not worked:
                stop.wait(self._poll_s)

    def serve_side_duties(self, stop: threading.Event, *, requeue_every_s: float) -> None:
        """What a Celery worker process does besides its tasks, until ``stop``: deliver due
        webhooks, run the quick jobs and requeue stranded jobs every ``requeue_every_s``."""
        sender = threading.Thread(target=self._deliver_webhooks, args=(stop,), daemon=True)
        sender.start()
        quick = threading.Thread(target=self._run_quick_jobs, args=(stop,), daemon=True)
        quick.start()
        while not stop.wait(requeue_every_s):
            try:
                self.requeue_stranded(queued_for_s=requeue_every_s)
            except Exception:  # the database or broker is away: try again next round
                log.exception("requeueing stranded jobs failed")
        sender.join(timeout=5)
        quick.join(timeout=5)

    def _deliver_webhooks(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                sent = self._webhooks.deliver_due()
            except Exception:
                log.exception("webhook delivery failed")
                sent = 0
            if not sent:
                stop.wait(1.0)
