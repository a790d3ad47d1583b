"""One database poll per followed resource, however many event streams follow it.

Each event stream (SSE) subscribes to a *subject* (one training or prediction of one
account). The first subscriber starts a poller task that reads the subject every ``poll_s``
and publishes what it read; every subscriber wakes up on a new value and renders it for its
own client; the poller stops when the subject reaches a final state, cannot be read any more
(deleted: ``NotFound``), or its last subscriber leaves. Open streams are also counted per
account, so one account cannot hold an unbounded number (``open_stream`` raises
``RateLimited`` past the cap). All of it is per server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from starlette.concurrency import run_in_threadpool

from loraforge.domain.errors import DomainError, RateLimited

log = logging.getLogger("loraforge.api.events")

STREAM_RETRY_AFTER_S = 5


class Subject:
    """The latest value read for one subject, or the error that ended it."""

    def __init__(self, load: Callable[[], Any], finished: Callable[[Any], bool]) -> None:
        self._load = load
        self._finished = finished
        self.version = 0
        self.value: Any = None
        self.error: DomainError | None = None
        self.subscribers = 0
        self._changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def ended(self) -> bool:
        return self.error is not None or (self.version > 0 and self._finished(self.value))

    async def wait_past(self, version: int) -> None:
        """Return once a value newer than ``version`` is published."""
        while self.version <= version:
            await self._changed.wait()

    async def poll(self, interval_s: float) -> None:
        while not self.ended:
            try:
                value = await run_in_threadpool(self._load)
            except DomainError as exc:  # deleted, or the database is gone: a final event
                self._publish(None, exc)
                return
            except Exception:
                log.exception("reading an event stream's subject failed")
                self._publish(None, DomainError("Internal server error.", code="internal_error"))
                return
            self._publish(value, None)
            if not self.ended:
                await asyncio.sleep(interval_s)

    def _publish(self, value: Any, error: DomainError | None) -> None:
        self.value, self.error = value, error
        self.version += 1
        # Wake every waiter of this version, then start a fresh event for the next one.
        self._changed.set()
        self._changed = asyncio.Event()


class EventHub:
    def __init__(self, *, poll_s: float, max_streams_per_account: int) -> None:
        self._poll_s = poll_s
        self._max_streams = max_streams_per_account
        self._subjects: dict[Hashable, Subject] = {}
        self._streams: Counter[str] = Counter()

    def open_stream(self, account_id: str) -> None:
        """Count one more open stream of the account; ``RateLimited`` past the cap."""
        if self._streams[account_id] >= self._max_streams:
            raise RateLimited(
                f"This account already has {self._max_streams} event streams open; "
                "close one or poll the resource instead.",
                retry_after=STREAM_RETRY_AFTER_S,
            )
        self._streams[account_id] += 1

    def close_stream(self, account_id: str) -> None:
        self._streams[account_id] -= 1
        if self._streams[account_id] <= 0:
            del self._streams[account_id]

    def subscribe(
        self, key: Hashable, load: Callable[[], Any], finished: Callable[[Any], bool]
    ) -> Subject:
        subject = self._subjects.get(key)
        if subject is None or subject.ended:  # ended: its last readers are leaving
            subject = Subject(load, finished)
            self._subjects[key] = subject
            subject.task = asyncio.create_task(subject.poll(self._poll_s))
        subject.subscribers += 1
        return subject

    async def unsubscribe(self, key: Hashable, subject: Subject) -> None:
        subject.subscribers -= 1
        if subject.subscribers > 0:
            return
        if self._subjects.get(key) is subject:
            del self._subjects[key]
        if subject.task is not None and not subject.task.done():
            subject.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await subject.task

    @property
    def subjects(self) -> int:
        """Subjects being followed now (each has at most one poller)."""
        return len(self._subjects)
