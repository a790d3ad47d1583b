"""Blob lifetimes: a blob that a committed row references is never removed.

Blobs are content-addressed, so rows share them: an upload of bytes that an image being
deleted also has reuses that image's blob. "Nothing references it any more, remove it" and
"reference it" must therefore exclude each other, in every process, on every blob store. Both
sides take the blob's key lock in the database (``UnitOfWork.blob_locks``):

- a writer ``adopt``s the blobs its rows will reference inside the transaction that commits
  those rows: it waits for the keys' locks, then puts back any blob that a removal took away
  after the writer had stored it. From then until the commit no removal can start.
- a removal (``release``) only try-locks: it never waits for writers, so deleting stays prompt.
  Keys it cannot lock now are left to the periodic sweep, which removes them later if they are
  still unreferenced. It checks the references and removes the blobs while holding the locks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import BinaryIO

from loraforge.domain.errors import NotFound
from loraforge.ports import BlobStore, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

# Opens the bytes of a blob again (only needed when a removal took it away meanwhile).
Source = Callable[[], AbstractContextManager[BinaryIO]]


@contextmanager
def rewound(stream: BinaryIO) -> Iterator[BinaryIO]:
    """A source over a stream the caller keeps open: from its start, left open."""
    stream.seek(0)
    yield stream


class BlobReferences:
    def __init__(self, *, uow: UnitOfWorkFactory, blobs: BlobStore) -> None:
        self._uow = uow
        self._blobs = blobs

    def adopt(self, uow: UnitOfWork, sources: Mapping[str, Source]) -> None:
        """In a write transaction about to commit rows that reference these keys: hold the keys
        until the commit and store again, from its source, any blob that is gone."""
        uow.blob_locks.lock(sources)
        for key in sorted(sources):
            if self._exists(key):
                continue
            with sources[key]() as source:
                stored = self._blobs.put_file(source)
            if stored.key != key:
                raise RuntimeError(f"blob source for {key} holds other bytes ({stored.key})")

    def pin(self, uow: UnitOfWork, keys: Iterable[str]) -> set[str]:
        """In a write transaction about to commit rows that reference existing blobs (of other
        rows, which may be deleted meanwhile): hold the keys until the commit and return those
        whose blobs are gone (removed with their rows since they were read)."""
        wanted = set(keys)
        uow.blob_locks.lock(wanted)
        return {key for key in wanted if not self._exists(key)}

    def release(self, keys: Iterable[str], *, wait: bool = False) -> int:
        """Remove those of ``keys`` that no row references; returns how many were removed.
        ``wait``: wait for writers holding a key instead of leaving it to the sweep (an
        erasure, which must remove the bytes now)."""
        wanted = set(keys)
        if not wanted:
            return 0
        with self._uow(write=True) as uow:
            if wait:
                uow.blob_locks.lock(wanted)
                held = wanted
            else:
                held = uow.blob_locks.try_lock(wanted)
            unused = held - uow.images.referenced_blob_keys(held)
            for key in sorted(unused):
                self._blobs.delete(key)
            # Nothing was written: leaving rolls the transaction back, which frees the locks.
        if skipped := len(wanted - held):
            log.info("blob removal: %d keys in use by a writer, left to the sweep", skipped)
        return len(unused)

    def _exists(self, key: str) -> bool:
        try:
            self._blobs.size(key)
        except NotFound:
            return False
        return True
