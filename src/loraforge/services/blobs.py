"""The sweep: remove blobs that no row references (left by crashes or deletions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import islice

from loraforge.ports import BlobStore, Clock, UnitOfWorkFactory
from loraforge.services.blob_refs import BlobReferences

# Keys checked and removed per transaction (SQLite: writers wait meanwhile).
BATCH = 100


@dataclass(frozen=True)
class SweepReport:
    examined: int
    removed: int
    temp_files_removed: int


class BlobSweeper:
    def __init__(
        self, *, uow: UnitOfWorkFactory, blobs: BlobStore, clock: Clock, grace_s: int
    ) -> None:
        self._blobs = blobs
        self._refs = BlobReferences(uow=uow, blobs=blobs)
        self._clock = clock
        # Blobs younger than this are left alone: they may belong to an upload whose row is not
        # committed yet, which would have to store them again (``BlobReferences.adopt``).
        self._grace = timedelta(seconds=grace_s)

    def sweep(self) -> SweepReport:
        cutoff = self._clock.now() - self._grace
        examined = removed = 0
        candidates = self._blobs.iter_keys(older_than=cutoff)
        while keys := set(islice(candidates, BATCH)):
            examined += len(keys)
            removed += self._refs.release(keys)
        temp = self._blobs.remove_stale_temp_files(older_than=cutoff)
        return SweepReport(examined=examined, removed=removed, temp_files_removed=temp)
