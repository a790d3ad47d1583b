"""The in-process queue: ``submit`` wakes a waiting worker, and ``run_worker`` runs the
worker's polling loop until it is told to stop."""

from __future__ import annotations

import threading

from loraforge.adapters.queue.inline import InlineJobQueue
from loraforge.ports import JobQueue


class LoopingWorker:
    """Records how the queue ran it."""

    def __init__(self) -> None:
        self.stopped_with: list[threading.Event] = []

    def run_forever(self, stop: threading.Event) -> None:
        stop.wait(5)
        self.stopped_with.append(stop)

    def run_subject(self, subject_id: str) -> bool:
        raise AssertionError("the inline queue carries no messages")

    def serve_side_duties(self, stop: threading.Event, *, requeue_every_s: float) -> None:
        raise AssertionError("the inline worker's loop delivers webhooks itself")


def test_run_worker_runs_the_polling_loop_until_stopped() -> None:
    queue: JobQueue = InlineJobQueue()
    worker, stop = LoopingWorker(), threading.Event()
    thread = threading.Thread(target=queue.run_worker, args=(worker, stop))
    thread.start()
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert worker.stopped_with == [stop]


def test_submit_wakes_a_waiting_worker_at_once() -> None:
    queue = InlineJobQueue()
    woke = threading.Event()

    def wait() -> None:
        queue.wait(30)
        woke.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    queue.submit("tr-1")
    assert woke.wait(5)
    waiter.join(timeout=5)
