"""Retention: images of some origins are deleted a while after their last use.

Runware's rule (seed 002): "Images are deleted 30 days after last use. As long as you continue
using them, we will continue saving them indefinitely." A use is the upload, a read or fetch of
the image, or its use in a task (``ImageService.record_use``). The server's periodic loop calls
``sweep``; an image used while a sweep runs is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from loraforge.ports import Clock
from loraforge.services.images import ImageService

BATCH = 200  # images deleted per transaction
MAX_BATCHES = 1000  # per origin and sweep; the rest waits for the next sweep


@dataclass(frozen=True)
class RetentionReport:
    deleted: dict[str, int] = field(default_factory=dict)  # per origin

    def __str__(self) -> str:
        counts = ", ".join(f"{origin}: {n}" for origin, n in sorted(self.deleted.items()))
        return f"deleted unused images ({counts or 'no retention rules'})"


class RetentionService:
    def __init__(
        self, *, images: ImageService, clock: Clock, keep_after_use: Mapping[str, timedelta]
    ) -> None:
        """``keep_after_use``: per origin, how long an image is kept after its last use; a
        zero or negative period keeps that origin's images forever."""
        self._images = images
        self._clock = clock
        self._keep = {
            origin: keep for origin, keep in keep_after_use.items() if keep > timedelta(0)
        }

    def sweep(self) -> RetentionReport:
        now = self._clock.now()
        deleted: dict[str, int] = {}
        for origin, keep in self._keep.items():
            cutoff = now - keep
            total = 0
            for _ in range(MAX_BATCHES):
                count = self._images.expire_unused(origin, before=cutoff, limit=BATCH)
                total += count
                if count < BATCH:
                    break
            deleted[origin] = total
        return RetentionReport(deleted=deleted)
