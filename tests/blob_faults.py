"""Ways a local blob folder becomes unusable, for the fault tests of the API and the store.

- ``file``: the folder was replaced by a file (real).
- ``unmounted``: the volume is not mounted: an empty mount point (real).
- ``read-only``: a read-only bind mount of the folder onto itself where this process may mount
  (root with CAP_SYS_ADMIN), else the injected layer below failing writes with EROFS.
- ``permission-denied``: ``chmod 000`` where that stops this process, which it does not for
  root (permission bits do not apply to it): there the injected layer fails every call with
  EACCES.
- ``io-error``: a failing disk: the injected layer fails every call with EIO.

The injected layer replaces the ``os`` functions that the store (and ``pathlib``, ``tempfile``)
call, and the store's ``FileIO``, with ones that raise for paths under the folder and pass
everything else through, so the database and the rest of the test are untouched.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import FileIO
from pathlib import Path
from typing import Any

import pytest

from loraforge.adapters.storage import local

MODES = ["file", "unmounted", "read-only", "permission-denied", "io-error"]
# Modes in which stored bytes can still be read.
READABLE = frozenset({"read-only"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_CALLS = ("stat", "lstat", "utime", "replace", "rename", "unlink", "mkdir", "rmdir")
_WRITES = frozenset({"utime", "replace", "rename", "unlink", "mkdir", "rmdir"})
_LISTINGS = ("scandir", "listdir")


@contextmanager
def unusable(root: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Make ``root`` unusable in ``mode`` for the block; yields how (``real`` or
    ``injected``); the folder is as before afterwards."""
    if mode in ("file", "unmounted"):
        with _moved_away(root, make=_file if mode == "file" else _empty_dir):
            yield "real"
    elif mode == "read-only":
        with _read_only_mount(root) as mounted:
            if mounted:
                yield "real"
            else:
                with _injected(root, errno.EROFS, monkeypatch, writes_only=True):
                    yield "injected"
    elif mode == "permission-denied":
        if os.geteuid() != 0:
            root.chmod(0)
            try:
                yield "real"
            finally:
                root.chmod(0o755)
        else:
            with _injected(root, errno.EACCES, monkeypatch, writes_only=False):
                yield "injected"
    else:
        assert mode == "io-error", mode
        with _injected(root, errno.EIO, monkeypatch, writes_only=False):
            yield "injected"


def _file(path: Path) -> None:
    path.write_bytes(b"not a folder")


def _empty_dir(path: Path) -> None:
    path.mkdir()


@contextmanager
def _moved_away(root: Path, *, make: Callable[[Path], None]) -> Iterator[None]:
    away = root.with_name(root.name + ".away")
    root.rename(away)
    make(root)
    try:
        yield
    finally:
        if root.is_dir():
            shutil.rmtree(root)
        else:
            root.unlink()
        away.rename(root)


@contextmanager
def _read_only_mount(root: Path) -> Iterator[bool]:
    def run(*args: str) -> bool:
        try:
            return subprocess.run(args, capture_output=True, check=False).returncode == 0
        except OSError:  # no mount command
            return False

    if not run("mount", "--bind", str(root), str(root)):
        yield False
        return
    try:
        if not run("mount", "-o", "remount,bind,ro", str(root)):
            yield False
            return
        yield True
    finally:
        if not run("umount", str(root)):
            run("umount", "-l", str(root))


@contextmanager
def _injected(
    root: Path, code: int, monkeypatch: pytest.MonkeyPatch, *, writes_only: bool
) -> Iterator[None]:
    prefix = str(root)

    def inside(path: Any) -> bool:
        if isinstance(path, int):  # a file descriptor: already open
            return False
        name = os.fsdecode(os.fspath(path))
        return name == prefix or name.startswith(prefix + os.sep)

    def failing(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            if inside(path) and (not writes_only or name in _WRITES):
                raise OSError(code, os.strerror(code), os.fspath(path))
            return real(path, *args, **kwargs)

        return call

    real_open = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if inside(path) and (not writes_only or flags & _WRITE_FLAGS):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    class FailingFileIO(FileIO):
        def __init__(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> None:
            if inside(file) and (not writes_only or set(mode) & set("wax+")):
                raise OSError(code, os.strerror(code), os.fspath(file))
            super().__init__(file, mode, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", open_)
        for name in _PATH_CALLS:
            patch.setattr(os, name, failing(name, getattr(os, name)))
        if not writes_only:
            for name in _LISTINGS:
                patch.setattr(os, name, failing(name, getattr(os, name)))
        patch.setattr(local, "FileIO", FailingFileIO, raising=False)
        yield
