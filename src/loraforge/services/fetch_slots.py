"""Admission for URL uploads: how many fetches run at once, per account and per process.

A URL upload holds a thread for as long as the upstream takes (up to the fetch deadline),
then decodes. Without a bound, one account's slow URLs took every thread the API had and
its reads stalled for everyone. Admission is immediate and never queues: a fetch beyond the
account's share is refused with ``RateLimited`` (429), one beyond the process's capacity with
``Unavailable`` (503), both with a ``Retry-After`` of one fetch deadline, by which time a
running fetch has ended. Entry points take a permit before they hand the work to a thread,
so refused requests cost nothing but this check.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from types import TracebackType

from loraforge.domain.errors import RateLimited, Unavailable

__all__ = ["FetchPermit", "FetchSlots"]


class FetchPermit:
    """One admitted fetch; leaving the ``with`` block (or ``release``) frees its slot once."""

    def __init__(self, slots: FetchSlots, account_id: str) -> None:
        self._slots = slots
        self._account_id = account_id
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._free(self._account_id)

    def __enter__(self) -> FetchPermit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class FetchSlots:
    def __init__(self, *, total: int, per_account: int, fetch_timeout_s: float) -> None:
        if total < 1 or per_account < 1:
            raise ValueError("fetch slots must be positive")
        self.total = total
        self.per_account = per_account
        self._retry_after = max(1, math.ceil(fetch_timeout_s))
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self._count = 0

    def admit(self, account_id: str) -> FetchPermit:
        """A permit now, or ``RateLimited`` / ``Unavailable`` now; never waits."""
        with self._lock:
            if self._in_flight[account_id] >= self.per_account:
                raise RateLimited(
                    f"This account already has {self.per_account} URL uploads in progress; "
                    "retry when one has finished.",
                    retry_after=self._retry_after,
                )
            if self._count >= self.total:
                raise Unavailable(
                    "The server is fetching as many URLs as it can; retry shortly.",
                    retry_after=self._retry_after,
                )
            self._in_flight[account_id] += 1
            self._count += 1
        return FetchPermit(self, account_id)

    def in_flight(self, account_id: str | None = None) -> int:
        with self._lock:
            return self._count if account_id is None else self._in_flight[account_id]

    def _free(self, account_id: str) -> None:
        with self._lock:
            self._in_flight[account_id] -= 1
            if self._in_flight[account_id] <= 0:
                del self._in_flight[account_id]
            self._count -= 1
