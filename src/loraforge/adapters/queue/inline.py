"""In-process queue: wakes local workers at once; workers in other processes poll the DB."""

from __future__ import annotations

import threading

from loraforge.ports import JobWorker


class InlineJobQueue:
    def __init__(self) -> None:
        self._wake = threading.Event()

    def submit(self, subject_id: str) -> None:
        self._wake.set()

    def wait(self, timeout: float) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def backlog(self) -> int:
        return 0  # the jobs table is the queue: nothing waits here

    def run_worker(self, worker: JobWorker, stop: threading.Event) -> None:
        worker.run_forever(stop)  # polls the database, woken early by ``submit``
