"""Local content-addressed blob store: ``<root>/ab/cd/<sha256>``, written atomically."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from loraforge.domain.entities import StoredBlob
from loraforge.domain.errors import InsufficientStorage, NotFound, Unavailable

CHUNK = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not _HEX.issuperset(key):
            raise NotFound("No such blob.")
        return self.root / key[:2] / key[2:4] / key

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_file(io.BytesIO(data))

    def put_file(self, source: BinaryIO) -> StoredBlob:
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        tmp = Path(tmp_name)
        try:
            digest, size = _copy_hashing(source, fd)
            final = self._path(digest)
            if _touch(final):
                # Identical bytes are stored once; the refreshed time makes the sweep's grace
                # period protect a blob that a new row is about to reference.
                tmp.unlink()
                return StoredBlob(key=digest, size=size, created=False)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return StoredBlob(key=digest, size=size, created=True)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("No space left to store the image.") from exc
            raise Unavailable("The blob store is not available.") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise NotFound("No such blob.") from exc

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise NotFound("No such blob.") from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def iter_keys(self, *, older_than: datetime) -> Iterator[str]:
        cutoff = older_than.timestamp()
        for path in self.root.glob("??/??/*"):
            if path.parent.parent.parent != self.root or len(path.name) != 64:
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    yield path.name
            except FileNotFoundError:
                continue

    def check(self) -> None:
        try:
            with tempfile.NamedTemporaryFile(dir=self._tmp) as probe:
                probe.write(b"ok")
                probe.flush()
        except OSError as exc:
            raise Unavailable("The blob store is not available.") from exc

    def remove_stale_temp_files(self, *, older_than: datetime) -> int:
        """Temp files left by a crash mid-write; returns how many were removed."""
        removed = 0
        for path in self._tmp.iterdir():
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:  # a write in flight finished since the listing
                continue
            if datetime.fromtimestamp(mtime, UTC) < older_than:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _copy_hashing(source: BinaryIO, fd: int) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            hasher.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return hasher.hexdigest(), size


def _touch(path: Path) -> bool:
    """Refresh an existing blob's time; False when it does not exist (or was just removed)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
