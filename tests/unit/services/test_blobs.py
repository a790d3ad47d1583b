"""BlobSweeper over in-memory fakes: only old, unreferenced blobs and stale temp files go."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from loraforge.domain.entities import Image, ImageFormat, ImageKind
from loraforge.ports import BlobStore, UnitOfWorkFactory
from loraforge.services.blobs import BATCH, BlobSweeper
from tests.fakes import (
    EPOCH,
    FakeClock,
    FakeUnitOfWorkFactory,
    InMemoryBlobStore,
    seed_account,
    seed_model,
)

GRACE = 3600


@dataclass
class World:
    clock: FakeClock
    uow: FakeUnitOfWorkFactory
    blobs: InMemoryBlobStore
    sweeper: BlobSweeper

    def add_image(self, image_id: str, original: bytes, display: bytes, thumbnail: bytes) -> Image:
        keys = [self.blobs.put_bytes(b).key for b in (original, display, thumbnail)]
        image = Image(
            id=image_id,
            account_id="acct",
            model_id="model",
            kind=ImageKind.TRAINING,
            format=ImageFormat.PNG,
            width=1,
            height=1,
            size_bytes=len(original),
            sha256=keys[0],
            name=None,
            original_key=keys[0],
            display_key=keys[1],
            display_mime="image/webp",
            thumbnail_key=keys[2],
            thumbnail_mime="image/webp",
            created_at=self.clock.now(),
            last_used_at=self.clock.now(),
        )
        with self.uow(write=True) as tx:
            tx.images.add(image)
            tx.commit()
        return image


@pytest.fixture
def world() -> World:
    clock = FakeClock(EPOCH)
    uow = FakeUnitOfWorkFactory()
    blobs = InMemoryBlobStore(clock)
    seed_account(uow, "acct")
    seed_model(uow, "acct", "model")
    ports: tuple[UnitOfWorkFactory, BlobStore] = (uow, blobs)
    sweeper = BlobSweeper(uow=ports[0], blobs=ports[1], clock=clock, grace_s=GRACE)
    return World(clock, uow, blobs, sweeper)


def test_removes_only_old_unreferenced_blobs(world: World) -> None:
    orphan_old = world.blobs.put_bytes(b"orphan from a crash").key
    image = world.add_image("img-1", b"kept original", b"kept display", b"kept thumb")
    world.clock.advance(GRACE + 1)
    orphan_young = world.blobs.put_bytes(b"upload in flight").key  # inside the grace period

    report = world.sweeper.sweep()

    assert report.removed == 1
    assert report.examined == 4  # the young blob is not even a candidate
    assert orphan_old not in world.blobs.blobs
    assert image.blob_keys() <= world.blobs.blobs.keys()
    assert orphan_young in world.blobs.blobs


def test_young_orphan_goes_once_the_grace_period_is_over(world: World) -> None:
    key = world.blobs.put_bytes(b"orphan").key
    world.clock.advance(GRACE - 1)
    assert world.sweeper.sweep().removed == 0
    assert key in world.blobs.blobs
    world.clock.advance(2)
    assert world.sweeper.sweep().removed == 1
    assert key not in world.blobs.blobs


def test_rewriting_identical_bytes_renews_the_grace_period(world: World) -> None:
    key = world.blobs.put_bytes(b"same").key
    world.clock.advance(GRACE + 1)
    world.blobs.put_bytes(b"same")  # a new upload is about to reference it
    assert world.sweeper.sweep().removed == 0
    assert key in world.blobs.blobs


def test_blobs_shared_with_a_live_image_stay(world: World) -> None:
    a = world.add_image("img-a", b"a", b"shared display", b"shared thumb")
    world.clock.advance(GRACE + 1)
    world.sweeper.sweep()
    assert a.blob_keys() <= world.blobs.blobs.keys()


def test_removes_stale_temp_files_only(world: World) -> None:
    world.blobs.add_temp_file("tmp-crashed")
    world.clock.advance(GRACE + 1)
    world.blobs.add_temp_file("tmp-writing-now")
    report = world.sweeper.sweep()
    assert report.temp_files_removed == 1
    assert set(world.blobs.temp_files) == {"tmp-writing-now"}


def test_many_orphans_are_swept_in_batches(world: World) -> None:
    count = BATCH * 2 + 17
    for i in range(count):
        world.blobs.put_bytes(f"orphan {i}".encode())
    image = world.add_image("img-1", b"o", b"d", b"t")
    world.clock.advance(GRACE + 1)
    report = world.sweeper.sweep()
    assert (report.examined, report.removed) == (count + 3, count)
    assert set(world.blobs.blobs) == image.blob_keys()
    assert world.sweeper.sweep().removed == 0  # idempotent


def test_nothing_to_do(world: World) -> None:
    report = world.sweeper.sweep()
    assert (report.examined, report.removed, report.temp_files_removed) == (0, 0, 0)
