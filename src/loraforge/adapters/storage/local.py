"""Local content-addressed blob store: ``<root>/ab/cd/<sha256>``, written atomically.

Every ``OSError`` is translated here into the domain's ``NotFound`` (no such blob),
``InsufficientStorage`` (disk or quota full) or ``Unavailable`` (anything else: the folder
replaced by a file, a volume that is not mounted, read-only or not ours, an I/O error), so a
broken disk answers 503 and never 500.

The store's ``tmp/`` folder, made when the store is first set up, marks its volume: where it is
missing the volume is not mounted (an empty mount point), so the store answers ``Unavailable``
rather than "no such blob", and never writes into the mount point, whose files would vanish
behind the volume once it is mounted again.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from io import FileIO
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from loraforge.domain.entities import StoredBlob
from loraforge.domain.errors import InsufficientStorage, NotFound, Unavailable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


_DOWN = "The blob store is not available."
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        # Set up a new store; a broken one still starts the server: it answers 503 (and
        # /readyz says so) until the folder is usable again.
        with suppress(OSError):
            self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not _HEX.issuperset(key):
            raise NotFound("No such blob.")
        return self.root / key[:2] / key[2:4] / key

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_file(io.BytesIO(data))

    def put_file(self, source: BinaryIO) -> StoredBlob:
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        except OSError as exc:
            raise _translated(exc) from exc
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
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise _translated(exc) from exc
        except BaseException:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            raw = FileIO(path, "rb")
        except FileNotFoundError as exc:
            raise self._absent() from exc
        except OSError as exc:
            raise _translated(exc) from exc
        return io.BufferedReader(_Reader(raw))

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            return path.stat().st_size
        except FileNotFoundError as exc:
            raise self._absent() from exc
        except OSError as exc:
            raise _translated(exc) from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            self._require_volume()  # gone already: fine, unless the whole volume is
        except OSError as exc:
            raise _translated(exc) from exc

    def iter_keys(self, *, older_than: datetime) -> Iterator[str]:
        # A store that is not there would list as empty (glob ignores errors): say it is down.
        self._require_volume()
        cutoff = older_than.timestamp()
        try:
            for path in self.root.glob("??/??/*"):
                if path.parent.parent.parent != self.root or len(path.name) != 64:
                    continue
                try:
                    if path.stat().st_mtime < cutoff:
                        yield path.name
                except FileNotFoundError:
                    continue
        except OSError as exc:
            raise _translated(exc) from exc

    def check(self) -> None:
        try:
            with tempfile.NamedTemporaryFile(dir=self._tmp) as probe:
                probe.write(b"ok")
                probe.flush()
        except OSError as exc:
            raise Unavailable(_DOWN) from exc

    def remove_stale_temp_files(self, *, older_than: datetime) -> int:
        """Temp files left by a crash mid-write; returns how many were removed."""
        removed = 0
        try:
            for path in self._tmp.iterdir():
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:  # a write in flight finished since the listing
                    continue
                if datetime.fromtimestamp(mtime, UTC) < older_than:
                    path.unlink(missing_ok=True)
                    removed += 1
        except OSError as exc:
            raise _translated(exc) from exc
        return removed

    def _absent(self) -> NotFound | Unavailable:
        """A blob that is not there: missing, or its whole volume is (see the module doc)."""
        try:
            self._require_volume()
        except Unavailable as down:
            return down
        return NotFound("No such blob.")

    def _require_volume(self) -> None:
        try:
            present = self._tmp.is_dir()
        except OSError as exc:  # is_dir answers False for a missing path, raises for others
            raise Unavailable(_DOWN) from exc
        if not present:
            raise Unavailable(_DOWN)


class _Reader(io.RawIOBase):
    """A blob's file; an I/O error mid-read (a failing disk) surfaces as ``Unavailable``."""

    def __init__(self, raw: FileIO) -> None:
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        try:
            return self._raw.readinto(buffer)
        except OSError as exc:
            raise Unavailable(_DOWN) from exc

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _translated(exc: OSError) -> InsufficientStorage | Unavailable:
    if exc.errno in _FULL:
        return InsufficientStorage("No space left to store the image.")
    return Unavailable(_DOWN)


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
