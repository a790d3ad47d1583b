"""ImageService over in-memory fakes: blob-then-row writes, clean-up, sharing, limits."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, replace
from typing import BinaryIO

import pytest

from loraforge.domain.entities import (
    ALL_FORMATS,
    Image,
    ImageFormat,
    ImageKind,
    ImageVariant,
    Limits,
    Principal,
    ProcessedImage,
    StoredBlob,
)
from loraforge.domain.errors import (
    FetchFailed,
    ImageRejected,
    InsufficientStorage,
    LimitReached,
    NotFound,
    Unavailable,
    UnsupportedFormat,
)
from loraforge.ports import BlobStore, Clock, ImageProcessor, UnitOfWorkFactory, UrlFetcher
from loraforge.services.image_bytes import MAX_NAME, Upload, sanitize_name
from loraforge.services.images import ImageService
from loraforge.services.paging import PageRequest
from tests.fakes import (
    PROCESSED,
    FakeClock,
    FakeFetcher,
    FakeIds,
    FakeImageProcessor,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    InMemoryBlobStore,
    seed_account,
    seed_model,
)

ME = Principal(account_id="acct-me", key_id="key-me")
OTHER = Principal(account_id="acct-other", key_id="key-other")
MODEL = "model-1"
TRAINING = ImageKind.TRAINING
REFERENCE = ImageKind.REFERENCE


@dataclass
class World:
    clock: FakeClock
    uow: FakeUnitOfWorkFactory
    blobs: InMemoryBlobStore
    processor: FakeImageProcessor
    fetcher: FakeFetcher
    service: ImageService

    def ingest(
        self,
        data: bytes,
        *,
        kind: ImageKind = TRAINING,
        model_id: str | None = MODEL,
        who: Principal = ME,
        name: str | None = None,
    ) -> Image:
        return self.service.ingest(
            who,
            Upload(stream=io.BytesIO(data), name=name),
            kind=kind,
            model_id=model_id,
            allowed=ALL_FORMATS,
        )

    def rows(self) -> dict[str, Image]:
        return self.uow.state.images

    def referenced(self) -> set[str]:
        keys: set[str] = set()
        for image in self.rows().values():
            keys |= image.blob_keys()
        return keys


def make_world(
    *,
    max_images_per_type: int = 20,
    decode_slots: int = 2,
    processor: FakeImageProcessor | None = None,
    capacity: int | None = None,
) -> World:
    clock = FakeClock()
    uow = FakeUnitOfWorkFactory()
    blobs = InMemoryBlobStore(clock, capacity=capacity)
    processor = processor or FakeImageProcessor()
    fetcher = FakeFetcher()
    # The fakes satisfy the ports (checked by mypy through these annotations).
    ports: tuple[UnitOfWorkFactory, BlobStore, ImageProcessor, UrlFetcher, Clock] = (
        uow,
        blobs,
        processor,
        fetcher,
        clock,
    )
    assert ports
    for who in (ME, OTHER):
        seed_account(uow, who.account_id)
    seed_model(uow, ME.account_id, MODEL)
    seed_model(uow, OTHER.account_id, "model-other")
    service = ImageService(
        uow=uow,
        blobs=blobs,
        processor=processor,
        fetcher=fetcher,
        clock=clock,
        new_id=FakeIds("img"),
        limits=Limits(max_images_per_type=max_images_per_type),
        decode_slots=decode_slots,
    )
    return World(clock, uow, blobs, processor, fetcher, service)


@pytest.fixture
def world() -> World:
    return make_world()


# --- ingest -----------------------------------------------------------------------------


def test_ingest_writes_the_blobs_before_the_row(world: World) -> None:
    seen_at_commit: list[set[str]] = []

    def blobs_already_stored(uow: FakeUnitOfWork) -> None:
        for image in uow.state.images.values():
            assert image.blob_keys() <= world.blobs.blobs.keys()
        seen_at_commit.append(set(world.blobs.blobs))

    world.uow.before_commit.append(blobs_already_stored)
    image = world.ingest(b"original bytes", name="../../etc/cat.jpg")

    assert seen_at_commit == [image.blob_keys()]
    assert world.rows() == {image.id: image}
    assert world.blobs.blobs[image.original_key] == b"original bytes"
    assert world.blobs.blobs[image.display_key] == PROCESSED.display
    assert world.blobs.blobs[image.thumbnail_key] == PROCESSED.thumbnail
    assert image.sha256 == image.original_key
    assert image.size_bytes == len(b"original bytes")
    assert (image.width, image.height, image.format) == (64, 48, ImageFormat.JPEG)
    assert image.name == "cat.jpg"
    assert image.created_at == image.last_used_at == world.clock.now()
    assert world.processor.calls == [b"original bytes"]


def test_failed_commit_removes_new_blobs_but_keeps_shared_ones(world: World) -> None:
    first = world.ingest(b"first")
    world.uow.fail_image_commits(RuntimeError("commit failed"))

    with pytest.raises(RuntimeError, match="commit failed"):
        world.ingest(b"second")

    # The display and thumbnail of "second" are the same bytes as those of "first": kept.
    assert world.rows() == {first.id: first}
    assert set(world.blobs.blobs) == first.blob_keys()


def test_failed_commit_of_the_only_upload_leaves_no_blob(world: World) -> None:
    world.uow.fail_commits(RuntimeError("commit failed"))
    with pytest.raises(RuntimeError):
        world.ingest(b"lonely")
    assert world.rows() == {}
    assert world.blobs.blobs == {}


def test_database_down_at_commit_time_leaves_no_row(world: World) -> None:
    def go_down(_: FakeUnitOfWork) -> None:
        world.uow.down = True
        # What the SQL unit of work makes of a connection lost at COMMIT.
        raise Unavailable("The database is not available.")

    world.uow.before_commit.append(go_down)
    with pytest.raises(Unavailable):  # the client is told to retry (503)
        world.ingest(b"bytes")
    world.uow.down = False
    # The clean-up could not ask the database which blobs are in use, so it kept them for
    # the sweep; above all, no row points at a missing blob.
    assert world.rows() == {}
    assert len(world.blobs.blobs) == 3


def test_identical_bytes_are_stored_once(world: World) -> None:
    a = world.ingest(b"same bytes")
    b = world.ingest(b"same bytes")
    assert a.id != b.id
    assert a.blob_keys() == b.blob_keys()
    assert len(world.blobs.blobs) == 3
    assert world.blobs.writes.count(a.original_key) == 2  # written twice, kept once


def test_delete_removes_unreferenced_blobs_and_keeps_shared_ones(world: World) -> None:
    x1 = world.ingest(b"x")
    x2 = world.ingest(b"x")
    y = world.ingest(b"y")

    world.service.delete(ME, x1.id)
    assert set(world.rows()) == {x2.id, y.id}
    assert set(world.blobs.blobs) == x2.blob_keys() | y.blob_keys()

    world.service.delete(ME, x2.id)
    assert x2.original_key not in world.blobs.blobs
    assert set(world.blobs.blobs) == y.blob_keys()  # display/thumbnail shared with y

    world.service.delete(ME, y.id)
    assert world.blobs.blobs == {}
    assert world.rows() == {}


def test_a_delete_stands_when_its_bytes_cannot_be_removed_now(world: World) -> None:
    """The row is gone once the delete commits: a blob store that is down just then must not
    turn it into an error (the client would retry a delete that happened); the bytes are left
    to the sweep."""
    image = world.ingest(b"x")
    world.blobs.down = True
    world.service.delete(ME, image.id)  # no Unavailable
    assert world.rows() == {}
    world.blobs.down = False
    assert set(world.blobs.blobs) == image.blob_keys()  # still there, unreferenced


def test_delete_is_scoped_to_account_model_and_kind(world: World) -> None:
    image = world.ingest(b"mine")
    with pytest.raises(NotFound):
        world.service.delete(OTHER, image.id)
    with pytest.raises(NotFound):
        world.service.delete(ME, image.id, model_id="model-other")
    with pytest.raises(NotFound):
        world.service.delete(ME, image.id, kind=REFERENCE)
    with pytest.raises(NotFound):
        world.service.delete(ME, "no-such-image")
    assert set(world.rows()) == {image.id}
    world.service.delete(ME, image.id, model_id=MODEL, kind=TRAINING)
    assert world.rows() == {}


def test_replace_keeps_the_id_and_releases_the_old_bytes(world: World) -> None:
    old = world.ingest(b"old bytes", name="old.jpg")
    world.clock.advance(60)
    new = world.service.replace(
        ME, old.id, Upload(stream=io.BytesIO(b"new bytes")), allowed=ALL_FORMATS
    )

    assert new.id == old.id
    assert (new.kind, new.model_id, new.created_at) == (old.kind, old.model_id, old.created_at)
    assert new.name == "old.jpg"  # no new name given: the old one stays
    assert new.last_used_at == world.clock.now()
    assert new.original_key != old.original_key
    assert world.rows() == {old.id: new}
    assert old.original_key not in world.blobs.blobs
    assert set(world.blobs.blobs) == new.blob_keys()


def test_replace_keeps_old_bytes_another_image_still_uses(world: World) -> None:
    a = world.ingest(b"shared")
    b = world.ingest(b"shared")
    world.service.replace(ME, a.id, Upload(stream=io.BytesIO(b"fresh")), allowed=ALL_FORMATS)
    assert b.original_key in world.blobs.blobs
    assert world.referenced() == set(world.blobs.blobs)


def test_failed_replace_keeps_the_old_row_and_bytes(world: World) -> None:
    old = world.ingest(b"old")
    world.uow.fail_image_commits(RuntimeError("commit failed"))
    with pytest.raises(RuntimeError):
        world.service.replace(ME, old.id, Upload(stream=io.BytesIO(b"new")), allowed=ALL_FORMATS)
    assert world.rows() == {old.id: old}
    assert set(world.blobs.blobs) == old.blob_keys()


def test_replace_is_scoped(world: World) -> None:
    image = world.ingest(b"mine")

    def attempt(who: Principal, model_id: str | None = None, kind: ImageKind | None = None) -> None:
        upload = Upload(stream=io.BytesIO(b"x"))
        world.service.replace(
            who, image.id, upload, allowed=ALL_FORMATS, model_id=model_id, kind=kind
        )

    for who, model_id, kind in (
        (OTHER, None, None),
        (ME, "model-other", None),
        (ME, None, REFERENCE),
    ):
        with pytest.raises(NotFound):
            attempt(who, model_id, kind)
    assert world.processor.calls == [b"mine"]  # refused before decoding
    assert world.rows() == {image.id: image}


# --- limits -----------------------------------------------------------------------------


def test_limit_holds_per_kind_and_is_checked_before_decoding() -> None:
    world = make_world(max_images_per_type=2)
    for i in range(2):
        world.ingest(f"training {i}".encode())
    before = dict(world.blobs.blobs)

    with pytest.raises(LimitReached) as caught:
        world.ingest(b"one too many")
    assert caught.value.code == "limit_reached"
    assert world.processor.calls[-1] != b"one too many"  # refused before decoding
    assert world.blobs.blobs == before

    # Each limited kind has its own count; outputs and model-less images have none.
    for i in range(2):
        world.ingest(f"reference {i}".encode(), kind=REFERENCE)
    with pytest.raises(LimitReached):
        world.ingest(b"reference 2", kind=REFERENCE)
    for i in range(3):
        world.ingest(f"output {i}".encode(), kind=ImageKind.OUTPUT)
        world.ingest(f"loose {i}".encode(), model_id=None)
    assert len(world.rows()) == 2 + 2 + 3 + 3
    assert MODEL in world.uow.locked


def test_zero_limit_refuses_everything() -> None:
    world = make_world(max_images_per_type=0)
    with pytest.raises(LimitReached):
        world.ingest(b"x")


class BarrierProcessor(FakeImageProcessor):
    """Holds every decode until all uploads are decoding: they all pass the early check."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)

    def process(self, source: BinaryIO, *, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        self.barrier.wait()
        return super().process(source, allowed=allowed)


def test_limit_holds_when_uploads_race_past_the_early_check() -> None:
    uploads, limit = 6, 4
    world = make_world(
        max_images_per_type=limit, decode_slots=uploads, processor=BarrierProcessor(uploads)
    )
    outcomes: list[str] = []
    lock = threading.Lock()

    def upload(i: int) -> None:
        try:
            world.ingest(f"racer {i}".encode())
            result = "ok"
        except LimitReached:
            result = "limit"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(uploads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(outcomes) == ["limit"] * (uploads - limit) + ["ok"] * limit
    assert len(world.rows()) == limit
    assert set(world.blobs.blobs) == world.referenced()


def test_ingest_into_a_missing_or_foreign_model_is_not_found(world: World) -> None:
    for model_id in ("model-other", "no-such-model"):
        with pytest.raises(NotFound):
            world.ingest(b"x", model_id=model_id)
    assert world.processor.calls == []
    assert world.blobs.blobs == {}


# --- failures while storing -------------------------------------------------------------


def test_rejected_image_leaves_nothing_behind() -> None:
    world = make_world(processor=FakeImageProcessor(error=ImageRejected("corrupt")))
    with pytest.raises(ImageRejected):
        world.ingest(b"corrupt bytes")
    assert world.blobs.blobs == {}
    assert world.rows() == {}


def test_unsupported_format_leaves_nothing_behind(world: World) -> None:
    with pytest.raises(UnsupportedFormat):
        world.service.ingest(
            ME,
            Upload(stream=io.BytesIO(b"x")),
            kind=TRAINING,
            model_id=MODEL,
            allowed=frozenset({ImageFormat.PNG}),
        )
    assert world.blobs.blobs == {}


def test_store_full_midway_removes_the_blobs_already_written() -> None:
    original = b"o" * 100
    world = make_world(capacity=len(original) + 5)  # the original fits, the display does not
    with pytest.raises(InsufficientStorage):
        world.ingest(original)
    assert world.blobs.writes == [world.blobs.writes[0]]  # the original was written…
    assert world.blobs.blobs == {}  # …and removed again
    assert world.rows() == {}


def test_shared_blob_removed_before_commit_is_written_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = world.ingest(b"first")
    put_bytes = world.blobs.put_bytes

    def put_then_lose_display(data: bytes) -> StoredBlob:
        stored = put_bytes(data)
        if data == PROCESSED.thumbnail:
            # Another request deleted the last image using these bytes between our blob
            # write (which found them present) and our transaction.
            world.blobs.delete(first.display_key)
        return stored

    monkeypatch.setattr(world.blobs, "put_bytes", put_then_lose_display)
    second = world.ingest(b"second")
    assert second.display_key == first.display_key
    assert world.blobs.blobs[second.display_key] == PROCESSED.display


# --- URLs -------------------------------------------------------------------------------


def test_ingest_url_fetches_and_names_the_image_after_the_path(world: World) -> None:
    url = "https://images.example/cats/tabby.png?size=large"
    world.fetcher.bodies[url] = b"fetched bytes"
    image = world.service.ingest_url(ME, url, kind=TRAINING, model_id=MODEL, allowed=ALL_FORMATS)
    assert image.name == "tabby.png"
    assert world.blobs.blobs[image.original_key] == b"fetched bytes"
    assert world.fetcher.requests == [(url, Limits().max_request_bytes)]
    assert all(stream.closed for stream in world.fetcher.opened)


def test_ingest_url_failure_leaves_nothing(world: World) -> None:
    with pytest.raises(FetchFailed):
        world.service.ingest_url(
            ME, "https://nowhere.example/x.png", kind=TRAINING, model_id=MODEL, allowed=ALL_FORMATS
        )
    assert world.blobs.blobs == {}
    assert world.rows() == {}


def test_ingest_url_checks_room_before_fetching() -> None:
    world = make_world(max_images_per_type=0)
    with pytest.raises(LimitReached):
        world.service.ingest_url(
            ME, "https://x.example/a.png", kind=TRAINING, model_id=MODEL, allowed=ALL_FORMATS
        )
    assert world.fetcher.requests == []


# --- reads ------------------------------------------------------------------------------


def test_get_and_list_are_scoped_and_newest_first(world: World) -> None:
    images = []
    for i in range(5):
        images.append(world.ingest(f"img {i}".encode()))
        world.clock.advance(1)
    world.ingest(b"ref", kind=REFERENCE)

    assert world.service.get(ME, images[0].id) == images[0]
    with pytest.raises(NotFound):
        world.service.get(OTHER, images[0].id)
    with pytest.raises(NotFound):
        world.service.get(ME, images[0].id, kind=REFERENCE)

    page = world.service.list_for_model(
        ME, MODEL, kinds=[TRAINING], page=PageRequest(page_num=1, page_size=2)
    )
    assert page.total == 5
    assert [i.id for i in page.items] == [images[4].id, images[3].id]
    last = world.service.list_for_model(
        ME, MODEL, kinds=[TRAINING], page=PageRequest(page_num=3, page_size=2)
    )
    assert [i.id for i in last.items] == [images[0].id]
    with pytest.raises(NotFound):
        world.service.list_for_model(
            OTHER, MODEL, kinds=[TRAINING], page=PageRequest(page_num=1, page_size=2)
        )


def test_images_of_a_deleted_model_disappear(world: World) -> None:
    image = world.ingest(b"x")
    with world.uow(write=True) as uow:
        model = uow.models.get(ME.account_id, MODEL, lock=True)
        assert model is not None
        uow.models.update(replace(model, deleted_at=world.clock.now()))
        uow.commit()
    with pytest.raises(NotFound):
        world.service.get(ME, image.id)
    with pytest.raises(NotFound):
        world.service.get_for_link(image.id)


def test_open_serves_each_variant(world: World) -> None:
    image = world.ingest(b"the original")
    link_image = world.service.get_for_link(image.id)
    expected: dict[ImageVariant, tuple[bytes, str]] = {
        ImageVariant.ORIGINAL: (b"the original", "image/jpeg"),
        ImageVariant.DISPLAY: (PROCESSED.display, PROCESSED.display_mime),
        ImageVariant.THUMBNAIL: (PROCESSED.thumbnail, PROCESSED.thumbnail_mime),
    }
    for variant, (data, mime) in expected.items():
        content = world.service.open(link_image, variant)
        with content.stream:
            assert content.stream.read() == data
        assert (content.mime, content.size) == (mime, len(data))
    assert world.service.read_original(image) == b"the original"


# --- names ------------------------------------------------------------------------------

NAME_CASES: list[tuple[str | None, str | None]] = [
    (None, None),
    ("", None),
    ("   ", None),
    ("cat.jpg", "cat.jpg"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\Pictures\\dog.png", "dog.png"),
    ("dir/", None),
    ("a\x00b\nc\td.png", "abcd.png"),
    ("  spaced.png  ", "spaced.png"),
    ("cafe\u0301.png", "caf\u00e9.png"),  # NFC
    ("x" * 1000, "x" * MAX_NAME),
]


@pytest.mark.parametrize(("raw", "clean"), NAME_CASES)
def test_sanitize_name(raw: str | None, clean: str | None) -> None:
    assert sanitize_name(raw) == clean


def test_name_is_sanitised_on_ingest(world: World) -> None:
    image = world.ingest(b"x", name="/var/tmp/\u202eevil\x1b[31m.png")
    assert image.name is not None
    assert "/" not in image.name
    assert all(c.isprintable() for c in image.name)
