"""The sha256 a receipt names for a base model (``BaseModelHasher``), cached per process.

A single-file checkpoint: the file's sha256 (what Civitai and AUTOMATIC1111 show). A diffusers
folder: the sha256 of the lines ``<relative path> <sha256>\\n`` of its files, sorted by path. The
built-in tiny model is the diffusers folder shipped in the package (``adapters/ml/tiny/weights``).
Hashing a 7 GB checkpoint takes seconds: the result is kept per path, size and mtime (a folder's
own, so a file replaced inside a folder is seen by the next process).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from loraforge.adapters.ml import tiny
from loraforge.domain.ml import BaseModel

_CHUNK = 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class CachedBaseModelHasher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int, int], str] = {}

    def sha256(self, base: BaseModel) -> str:
        path = base.path if base.path is not None else tiny.WEIGHTS_DIR
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        value = _folder_sha256(path) if path.is_dir() else file_sha256(path)
        with self._lock:
            self._cache[key] = value
        return value


def _folder_sha256(folder: Path) -> str:
    lines = [
        f"{p.relative_to(folder).as_posix()} {file_sha256(p)}\n"
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()
