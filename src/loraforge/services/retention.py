"""Retention: images of some origins are deleted a while after their last use.

Runware's rule (seed 002): "Images are deleted 30 days after last use. As long as you continue
using them, we will continue saving them indefinitely." A use is the upload, a read or fetch of
the image, or its use in a task (``ImageService.record_use``). The server's periodic loop calls
``sweep``; an image used while a sweep runs is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loraforge.ports import Clock, UnitOfWorkFactory
from loraforge.services.images import ImageService

BATCH = 200  # images deleted per transaction
MAX_BATCHES = 1000  # per origin and sweep; the rest waits for the next sweep


@dataclass(frozen=True)
class RetentionReport:
    deleted: dict[str, int] = field(default_factory=dict)  # images, per origin
    forgotten: dict[str, int] = field(default_factory=dict)  # task ids, per origin

    def __str__(self) -> str:
        counts = ", ".join(f"{origin}: {n}" for origin, n in sorted(self.deleted.items()))
        forgotten = sum(self.forgotten.values())
        return (
            f"deleted unused images ({counts or 'no retention rules'}); "
            f"forgot {forgotten} old task id(s)"
        )


class RetentionService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        images: ImageService,
        clock: Clock,
        keep_after_use: Mapping[str, timedelta],
    ) -> None:
        """``keep_after_use``: per origin, how long an image is kept after its last use; a
        zero or negative period keeps that origin's images forever. The origin's task ids
        (idempotency receipts) are forgotten as long after they were first used: clients
        retry a task within seconds, and the table would otherwise grow forever."""
        self._uow = uow
        self._images = images
        self._clock = clock
        self._keep = {
            origin: keep for origin, keep in keep_after_use.items() if keep > timedelta(0)
        }

    def sweep(self) -> RetentionReport:
        now = self._clock.now()
        deleted: dict[str, int] = {}
        forgotten: dict[str, int] = {}
        for origin, keep in self._keep.items():
            cutoff = now - keep
            deleted[origin] = _in_batches(
                lambda: self._images.expire_unused(origin, before=cutoff, limit=BATCH)  # noqa: B023
            )
            forgotten[origin] = _in_batches(
                lambda: self._forget_task_ids(origin, before=cutoff)  # noqa: B023
            )
        return RetentionReport(deleted=deleted, forgotten=forgotten)

    def _forget_task_ids(self, origin: str, *, before: datetime) -> int:
        with self._uow(write=True) as uow:
            count = uow.receipts.delete_before(f"{origin}:", before=before, limit=BATCH)
            uow.commit()
        return count


def _in_batches(batch: Callable[[], int]) -> int:
    """Run ``batch`` (one transaction of at most BATCH) until it does less than a full one."""
    total = 0
    for _ in range(MAX_BATCHES):
        count = batch()
        total += count
        if count < BATCH:
            break
    return total
