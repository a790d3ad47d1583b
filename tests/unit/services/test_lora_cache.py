"""LoraCache: a worker's local copies of LoRA weights, one file per training; erased trainings'
copies removed by the eraser at once, by every worker on prune, and by the copier itself when
the erase lands while it copies (each interleaving forced here; tests/integration/work/
test_lora_cache.py races them on real databases)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from loraforge.domain.work import RunStatus, Training
from loraforge.services.lora_cache import LoraCache, TrainingErased
from tests.fakes import EPOCH, FakeUnitOfWorkFactory, InMemoryBlobStore, seed_account, seed_model
from tests.integration.repositories import entities


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.uow = FakeUnitOfWorkFactory()
        self.blobs = InMemoryBlobStore()
        self.folder = tmp_path / "loras"
        self.cache = LoraCache(folder=self.folder, uow=self.uow, blobs=self.blobs)
        self.forgotten: list[Path] = []
        self.cache.on_drop(self.forgotten.extend)
        seed_account(self.uow, entities.ME)
        seed_model(self.uow, entities.ME, "m-1")

    def trained(self, training_id: str) -> Training:
        key = self.blobs.put_bytes(f"weights of {training_id}".encode()).key
        training = dataclasses.replace(
            entities.training(training_id, "m-1"), status=RunStatus.SUCCEEDED, artifact_key=key
        )
        with self.uow(write=True) as tx:
            tx.trainings.add(training, pinned_blobs=set())
            tx.commit()
        return training

    def erase(self, training_id: str) -> None:
        """What ProvenanceService.erase commits (the blob goes after the commit)."""
        with self.uow(write=True) as tx:
            training = tx.trainings.get(training_id)
            assert training is not None
            assert training.artifact_key is not None
            key, training.artifact_key, training.erased_at = training.artifact_key, None, EPOCH
            tx.trainings.update(training)
            tx.commit()
        self.blobs.delete(key)

    def files(self) -> set[str]:
        return {p.name for p in self.folder.iterdir()} if self.folder.exists() else set()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_copy_is_the_training_s_weights_written_once(world: World) -> None:
    training = world.trained("tr-1")

    paths = world.cache.copies([training])

    assert paths == {"tr-1": world.folder / "tr-1.safetensors"}
    assert paths["tr-1"].read_bytes() == b"weights of tr-1"
    world.blobs.down = True  # the second time the cached copy serves
    assert world.cache.copies([training]) == paths
    assert world.files() == {"tr-1.safetensors"}


def test_drop_removes_finished_and_partial_copies_and_tells_the_generator(world: World) -> None:
    world.cache.copies([world.trained("tr-1"), world.trained("tr-2")])
    (world.folder / "tr-1.x1y2.partial").write_bytes(b"half")

    assert world.cache.drop(["tr-1"]) == 2

    assert world.files() == {"tr-2.safetensors"}
    assert world.forgotten == [world.folder / "tr-1.safetensors"]


def test_prune_keeps_live_copies_only(world: World) -> None:
    world.cache.copies([world.trained("tr-live"), world.trained("tr-erased")])
    legacy = world.folder / f"{'ab' * 32}.safetensors"  # named by blob key, before this cache
    legacy.write_bytes(b"old")
    world.erase("tr-erased")

    assert world.cache.prune() == 2

    assert world.files() == {"tr-live.safetensors"}
    assert world.folder / "tr-erased.safetensors" in world.forgotten
    assert world.cache.prune() == 0  # nothing left to do


def test_prune_unloads_what_another_process_deleted(world: World) -> None:
    """The embedded server's API deletes the files of the worker processes sharing its work
    folder; the worker's generator still holds the adapter until its next prune."""
    world.cache.copies([world.trained("tr-1")])
    world.erase("tr-1")
    (world.folder / "tr-1.safetensors").unlink()  # the eraser's drop, in another process

    world.cache.prune()

    assert world.forgotten == [world.folder / "tr-1.safetensors"]


class _Hooked(InMemoryBlobStore):
    """Runs ``hook`` when a blob is opened: an erase landing while the copy is made."""

    hook: Callable[[], None] = staticmethod(lambda: None)

    def open(self, key: str) -> BinaryIO:
        stream = super().open(key)
        self.hook()
        return stream


def _hooked_world(tmp_path: Path) -> tuple[World, _Hooked]:
    world = World(tmp_path)
    blobs = _Hooked()
    blobs.blobs = world.blobs.blobs
    world.blobs = blobs
    world.cache = LoraCache(folder=world.folder, uow=world.uow, blobs=blobs)
    world.cache.on_drop(world.forgotten.extend)
    return world, blobs


def test_an_erase_committed_during_the_copy_leaves_no_copy(tmp_path: Path) -> None:
    world, blobs = _hooked_world(tmp_path)
    training = world.trained("tr-1")
    blobs.hook = lambda: world.erase("tr-1")  # committed; its drop finds no file yet

    with pytest.raises(TrainingErased, match="tr-1"):
        world.cache.copies([training])

    assert world.files() == set()
    assert world.folder / "tr-1.safetensors" in world.forgotten


def test_an_erase_dropping_the_partial_copy_leaves_no_copy(tmp_path: Path) -> None:
    world, blobs = _hooked_world(tmp_path)
    training = world.trained("tr-1")

    def erase_and_drop() -> None:
        world.erase("tr-1")
        assert world.cache.drop(["tr-1"]) == 1  # the partial file

    blobs.hook = erase_and_drop

    with pytest.raises(TrainingErased):
        world.cache.copies([training])

    assert world.files() == set()


def test_a_blob_gone_for_another_reason_is_an_error_not_an_erase(world: World) -> None:
    training = world.trained("tr-1")
    world.blobs.blobs.clear()

    with pytest.raises(Exception, match="No such blob") as raised:
        world.cache.copies([training])

    assert not isinstance(raised.value, TrainingErased)
    assert world.files() == set()
