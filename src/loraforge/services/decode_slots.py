"""Fair shares of the decode slots: one account's expensive images cannot hold them all.

Decoding is the costly part of an upload (a 7000 x 7000 PNG takes seconds and hundreds of
MB), so only ``slots`` run at once. An account may hold at most ``per_account`` of them; a
freed slot goes to the longest-waiting upload whose account is under its share, so another
account's small upload is next in line instead of behind a queue of the first one's.

A share bounds what one account can hold while others wait, not what it may use alone: a
cheap decode (at most ``CHEAP_PIXELS``) may also take a free slot beyond its account's share
when no upload under its share is waiting, so one account alone still gets every slot for
ordinary photos. Expensive decodes (and those whose cost the header does not tell) never go
beyond the share, so another account's upload waits at most for one cheap decode.

Waiting is the normal case and costs the client nothing but time (upload clients rarely
retry), so uploads queue instead of being refused, within bounds: an account with
``queue_per_account`` uploads already waiting gets ``RateLimited`` (429) at once (its waiting
uploads hold threads and spooled bodies), and an upload that waited ``wait_s`` without a slot
gets ``Unavailable`` (503): the server is overloaded. Both carry ``Retry-After``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from loraforge.domain.errors import RateLimited, Unavailable

__all__ = ["RETRY_AFTER_S", "DecodeSlots"]

RETRY_AFTER_S = 5
"""About one expensive decode: when a refused upload may find room."""
CHEAP_PIXELS = 4096 * 4096
"""Decodes up to this many pixels (a 12 MP photo; a 24 MP JPEG decodes at half scale) take
well under a second and may use a slot beyond the account's share (see above)."""


class DecodeSlots:
    def __init__(
        self, *, slots: int, per_account: int, queue_per_account: int, wait_s: float
    ) -> None:
        if min(slots, per_account, queue_per_account) < 1 or wait_s <= 0:
            raise ValueError("decode slots, shares and waits must be positive")
        self._slots = slots
        self._per_account = min(per_account, slots)
        self._queue_per_account = queue_per_account
        self._wait_s = wait_s
        self._changed = threading.Condition()
        self._queue: list[tuple[object, str, bool]] = []  # (ticket, account, cheap), oldest first
        self._waiting: Counter[str] = Counter()
        self._running: Counter[str] = Counter()
        self._busy = 0

    @contextmanager
    def hold(
        self, account_id: str, *, bounded: bool = True, cost: int | None = None
    ) -> Iterator[None]:
        """A decode slot for ``account_id`` for the ``with`` block (waits fairly for it).
        ``cost``: pixels the decode produces, None when unknown (counted as expensive).
        ``bounded=False`` (the worker storing generated images: a refusal would fail a
        finished prediction) waits as long as it takes and is never refused."""
        self._acquire(account_id, bounded, cheap=cost is not None and cost <= CHEAP_PIXELS)
        try:
            yield
        finally:
            with self._changed:
                self._running[account_id] -= 1
                self._busy -= 1
                self._changed.notify_all()

    @property
    def waiting(self) -> int:
        """Uploads waiting for a slot now."""
        with self._changed:
            return len(self._queue)

    def _acquire(self, account_id: str, bounded: bool, *, cheap: bool) -> None:
        with self._changed:
            if bounded and self._waiting[account_id] >= self._queue_per_account:
                raise RateLimited(
                    f"This account already has {self._queue_per_account} uploads waiting to "
                    "be decoded; retry when they have finished.",
                    retry_after=RETRY_AFTER_S,
                )
            ticket = object()
            self._queue.append((ticket, account_id, cheap))
            self._waiting[account_id] += 1
            try:
                admitted = self._changed.wait_for(
                    lambda: self._next() is ticket, self._wait_s if bounded else None
                )
            finally:
                self._queue.remove((ticket, account_id, cheap))
                self._waiting[account_id] -= 1
            if not admitted:
                raise Unavailable(
                    "The server is decoding as many images as it can; retry shortly.",
                    retry_after=RETRY_AFTER_S,
                )
            self._running[account_id] += 1
            self._busy += 1
            self._changed.notify_all()  # the next eligible waiter may take a second free slot

    def _next(self) -> object | None:
        """The ticket that gets the next free slot: the oldest under its account's share, else
        (nobody under a share is waiting) the oldest cheap one."""
        if self._busy >= self._slots:
            return None
        for ticket, account, _ in self._queue:
            if self._running[account] < self._per_account:
                return ticket
        return next((ticket for ticket, _, cheap in self._queue if cheap), None)
