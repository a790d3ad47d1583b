"""Keeps worker processes running beside the API server: restarts any that die."""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("loraforge.supervisor")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class WorkerSupervisor:
    def __init__(self, *, count: int, data_dir: Path) -> None:
        self._count = count
        self._data_dir = data_dir
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self._count):
            thread = threading.Thread(target=self._keep_alive, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _keep_alive(self, n: int) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "loraforge", "worker", "--data-dir", str(self._data_dir)],
                preexec_fn=_die_with_parent(),
            )
            log.info("worker %d started (pid %d)", n, proc.pid)
            while proc.poll() is None:
                if self._stop.wait(0.5):
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                    return
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            log.warning("worker %d exited with %s; restarting in %.0fs", n, proc.returncode, delay)
            self._stop.wait(delay)


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: the worker gets SIGTERM when the server dies, even by SIGKILL.

    libc is resolved here, in the parent: the child between fork and exec may only make the
    system call, not import or allocate.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm
