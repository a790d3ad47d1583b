"""ImageBatches over fakes: several uploads to one model, one transaction, the limit held."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import BinaryIO

import pytest

from loraforge.domain.captions import MAX_CAPTION, CaptionSource
from loraforge.domain.entities import ALL_FORMATS, ImageFormat, ProcessedImage
from loraforge.domain.errors import DomainError, ImageRejected, NotFound
from loraforge.services.image_batches import Outcome
from loraforge.services.image_bytes import Upload
from tests.fakes import FakeImageProcessor
from tests.unit.services.test_images import ME, MODEL, TRAINING, World, make_world


class Picky(FakeImageProcessor):
    """Refuses bytes that start with ``bad``; runs ``on_decode`` (if set) for each upload."""

    def __init__(self) -> None:
        super().__init__()
        self.on_decode: Callable[[bytes], None] | None = None

    def process(self, source: BinaryIO, *, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        data = source.read()
        source.seek(0)
        if self.on_decode is not None:
            self.on_decode(data)
        if data.startswith(b"bad"):
            self.calls.append(data)
            raise ImageRejected("The image is corrupt.", code="corrupt_image")
        return super().process(source, allowed=allowed)


def batch(
    world: World, *uploads: bytes | tuple[bytes, str], model_id: str = MODEL
) -> list[Outcome]:
    def upload(item: bytes | tuple[bytes, str]) -> Upload:
        data, caption = item if isinstance(item, tuple) else (item, None)
        return Upload(stream=io.BytesIO(data), name=data.decode()[:8], caption=caption)

    return world.service.batches.ingest(
        ME,
        [upload(u) for u in uploads],
        kind=TRAINING,
        model_id=model_id,
        allowed=ALL_FORMATS,
        origin="native",
    )


def codes(outcomes: list[Outcome]) -> list[str | None]:
    return [o.error.code if o.error else None for o in outcomes]


@pytest.fixture
def picky() -> tuple[World, Picky]:
    processor = Picky()
    return make_world(max_images_per_type=3, processor=processor), processor


def test_each_upload_is_answered_in_order_and_the_first_take_the_places(
    picky: tuple[World, Picky],
) -> None:
    world, processor = picky
    existing = world.ingest(b"existing")
    writes_before = world.uow.opened.count(True)

    outcomes = batch(world, b"a", b"bad", (b"b", "a caption"), b"c")

    assert codes(outcomes) == [None, "corrupt_image", None, "limit_reached"]
    a, b = outcomes[0].image, outcomes[2].image
    assert a is not None
    assert b is not None
    assert set(world.rows()) == {existing.id, a.id, b.id}
    assert a.created_at < b.created_at  # listings keep the batch's order
    assert (b.caption, b.caption_source) == ("a caption", CaptionSource.USER)
    assert (a.caption, a.caption_source) == ("", CaptionSource.NONE)
    assert b"c" not in processor.calls  # no place left for it: never decoded
    assert world.uow.opened.count(True) == writes_before + 1  # one write for the batch
    assert world.blobs.blobs.keys() == world.referenced()


def test_a_caption_a_single_upload_refuses_is_refused_before_decoding(
    picky: tuple[World, Picky],
) -> None:
    world, processor = picky

    outcomes = batch(world, (b"wordy", "w" * (MAX_CAPTION + 1)), b"fine")

    assert codes(outcomes) == ["invalid_request", None]
    assert processor.calls == [b"fine"]


def test_places_taken_while_the_batch_decodes_are_not_taken_twice(
    picky: tuple[World, Picky],
) -> None:
    world, processor = picky
    existing = world.ingest(b"existing")

    def racer(data: bytes) -> None:
        if data == b"b":  # a single upload commits while the batch is decoding
            with world.uow(write=True) as uow:
                uow.images.add(dataclasses.replace(existing, id="racer"))
                uow.commit()

    processor.on_decode = racer
    outcomes = batch(world, b"a", b"b")

    assert codes(outcomes) == [None, "limit_reached"]
    assert len(world.rows()) == 3
    assert world.blobs.blobs.keys() == world.referenced()  # b's original is gone again


def test_a_failed_commit_stores_nothing_and_keeps_shared_blobs(picky: tuple[World, Picky]) -> None:
    world, _ = picky
    existing = world.ingest(b"existing")
    world.uow.fail_image_commits(RuntimeError("commit failed"))

    with pytest.raises(RuntimeError, match="commit failed"):
        batch(world, b"a", b"existing")

    assert world.rows() == {existing.id: existing}
    assert set(world.blobs.blobs) == existing.blob_keys()


def test_another_account_s_model_is_not_found_and_nothing_is_decoded(
    picky: tuple[World, Picky],
) -> None:
    world, processor = picky
    with pytest.raises(NotFound):
        batch(world, b"a", model_id="model-other")
    assert processor.calls == []
    assert world.blobs.blobs == {}


def test_an_empty_batch_stores_nothing(picky: tuple[World, Picky]) -> None:
    world, _ = picky
    assert batch(world) == []
    assert world.rows() == {}


def test_outcomes_carry_the_errors_a_single_upload_raises(picky: tuple[World, Picky]) -> None:
    world, _ = picky
    with pytest.raises(DomainError) as single:
        world.ingest(b"bad bytes")
    (outcome,) = batch(world, b"bad bytes")
    assert outcome.error is not None
    assert (outcome.error.code, type(outcome.error)) == (single.value.code, type(single.value))
