"""A worker's local copies of LoRA weights, which its generator loads from files.

One file per training, ``<training id>.safetensors`` in the cache folder (the worker's
``work/loras``), and one per checkpoint a prediction named, ``<training id>.step<N>.safetensors``,
each written as ``<training id>.<random>.partial`` and renamed. An erased training
(docs/api.md, "Erasure") must leave no copy behind in any worker:

- the process that erases drops the copies in its own folder at once (``drop``) and tells its
  generator to unload them (``on_drop``);
- every worker prunes its folder when it starts and before each prediction (``prune``): one
  query over the training ids its file names and its generator hold keeps the copies of
  trainings whose weights are still stored, and removes every other file;
- a copy written while an erase lands is checked after the write (``copies``): the erase
  commits before it drops the files, the copy is written before the check reads, so either the
  drop sees the file or the check sees the erase.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from loraforge.domain.work import Training
from loraforge.ports import BlobStore, UnitOfWorkFactory

SUFFIX = ".safetensors"
PARTIAL = ".partial"


class TrainingErased(Exception):
    """A training of the prediction was erased while its weights were being copied (a
    worker's own ending, never an answer: the prediction fails with this message)."""


class LoraCache:
    def __init__(self, *, folder: Path, uow: UnitOfWorkFactory, blobs: BlobStore) -> None:
        self._folder = folder
        self._uow = uow
        self._blobs = blobs
        self._listeners: list[Callable[[Collection[Path]], None]] = []
        self._handed: set[str] = set()  # training ids whose copy this process handed out
        self._lock = threading.Lock()  # guards _handed and _listeners

    def on_drop(self, listener: Callable[[Collection[Path]], None]) -> None:
        """Call ``listener(paths)`` after the copies at ``paths`` were removed (a generator
        unloads the adapters it loaded from them)."""
        with self._lock:
            self._listeners.append(listener)

    def path(self, training_id: str) -> Path:
        return self._folder / f"{training_id}{SUFFIX}"

    def copies(
        self,
        trainings: Collection[Training],
        checkpoints: Collection[tuple[str, int, str]] = (),
    ) -> dict[str, Path]:
        """A local copy of each training's weights, by training id, and of each checkpoint
        ``(training id, step, blob key)``, by ``cache_name(training id, step)``: the cached
        one, or one copied from the blob store now. ``TrainingErased`` (and no copy left of
        those trainings) when any of them was erased by the time the copies are in place."""
        ids = {t.id for t in trainings} | {c[0] for c in checkpoints}
        with self._lock:
            self._handed.update(ids)
        paths: dict[str, Path] = {}
        try:
            for training in trainings:
                assert training.artifact_key is not None  # a succeeded training's weights
                paths[training.id] = self._copy(training.id, training.id, training.artifact_key)
            for training_id, step, key in checkpoints:
                name = cache_name(training_id, step)
                paths[name] = self._copy(training_id, name, key)
        except Exception:
            self._check_not_erased(ids)  # the erase removed the blob
            raise
        self._check_not_erased(ids)
        return paths

    def drop(self, training_ids: Collection[str]) -> int:
        """Remove the copies of these trainings (finished or partial) and tell the listeners;
        the number of files removed."""
        wanted = set(training_ids)
        if not wanted:
            return 0
        removed = 0
        for name in _names(self._folder):
            if _training_id(name) in wanted:
                with contextlib.suppress(FileNotFoundError):
                    (self._folder / name).unlink()
                    removed += 1
        with self._lock:
            self._handed -= wanted
            listeners = list(self._listeners)
        paths = [self.path(t) for t in sorted(wanted)]
        for listener in listeners:
            listener(paths)
        return removed

    def prune(self) -> int:
        """Remove every copy whose training's weights are no longer stored (erased, or a file
        this cache does not name); the number of files removed."""
        names = _names(self._folder)
        with self._lock:
            held = {_training_id(n) for n in names} | self._handed
        if not held:
            return 0
        with self._uow() as uow:
            kept = uow.trainings.with_weights(held)
        return self.drop(held - kept)

    def _copy(self, training_id: str, name: str, key: str) -> Path:
        path = self._folder / f"{name}{SUFFIX}"
        if path.exists():
            return path
        self._folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._folder, prefix=f"{training_id}.", suffix=PARTIAL)
        try:
            with os.fdopen(fd, "wb") as out, self._blobs.open(key) as stream:
                while chunk := stream.read(1024 * 1024):
                    out.write(chunk)
            os.replace(tmp, path)  # FileNotFoundError: an erase removed the partial copy
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return path

    def _check_not_erased(self, training_ids: set[str]) -> None:
        with self._uow() as uow:
            gone = training_ids - uow.trainings.with_weights(training_ids)
        if gone:
            self.drop(gone)
            first = sorted(gone)[0]
            raise TrainingErased(f"Training {first} was erased (an image it used was erased).")


def cache_name(training_id: str, step: int | None) -> str:
    """The cache's name for a training's final weights (``step`` None) or its checkpoint."""
    return training_id if step is None else f"{training_id}.step{step}"


def _names(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(folder) if entry.is_file()]
    except FileNotFoundError:
        return []


def _training_id(name: str) -> str:
    """The training a cache file belongs to: the name up to its first dot."""
    return name.split(".", 1)[0]
