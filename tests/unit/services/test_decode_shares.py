"""Decode slots are shared fairly: one account's slow images never make another's wait.

ImageService over the in-memory fakes, with a processor whose decodes of ``slow`` bytes take
as long as the test says; every other decode is instant.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import BinaryIO

import pytest

from loraforge.domain.entities import (
    ALL_FORMATS,
    Image,
    ImageFormat,
    ImageKind,
    Limits,
    Principal,
    ProcessedImage,
)
from loraforge.domain.errors import RateLimited, Unavailable
from loraforge.services.decode_slots import RETRY_AFTER_S, DecodeSlots
from loraforge.services.image_bytes import Upload
from loraforge.services.images import ImageService
from tests.fakes import (
    FakeClock,
    FakeFetcher,
    FakeIds,
    FakeImageProcessor,
    FakeUnitOfWorkFactory,
    InMemoryBlobStore,
    seed_account,
)

A = Principal(account_id="acct-a", key_id="key-a")
B = Principal(account_id="acct-b", key_id="key-b")
PROMPT_S = 2.0  # an instant decode on a loaded machine; the slow ones last until released


class GatedProcessor(FakeImageProcessor):
    """Decodes of bytes starting with ``slow`` wait for ``release``; the rest are instant."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.slow_started = threading.Semaphore(0)
        self.slow_count = 0

    def process(self, source: BinaryIO, *, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        if source.read(4) == b"slow":
            self.slow_count += 1
            self.slow_started.release()
            assert self.release.wait(15), "the test never released the slow decodes"
        source.seek(0)
        return super().process(source, allowed=allowed)

    def decode_cost(self, source: BinaryIO) -> int | None:
        """The slow images are big ones (a 7000 x 7000 PNG); the rest are small."""
        expensive = source.read(4) == b"slow"
        source.seek(0)
        return 49_000_000 if expensive else 1_000


def service(processor: GatedProcessor, shares: DecodeSlots, slots: int = 2) -> ImageService:
    clock = FakeClock()
    uow = FakeUnitOfWorkFactory()
    for who in (A, B):
        seed_account(uow, who.account_id)
    return ImageService(
        uow=uow,
        blobs=InMemoryBlobStore(clock),
        processor=processor,
        fetcher=FakeFetcher(),
        clock=clock,
        new_id=FakeIds("img"),
        limits=Limits(),
        decode_slots=slots,
        decode_shares=shares,
    )


def upload(images: ImageService, who: Principal, data: bytes) -> Image:
    return images.ingest(
        who, Upload(io.BytesIO(data)), kind=ImageKind.REFERENCE, model_id=None, allowed=ALL_FORMATS
    )


@pytest.fixture
def processor() -> Iterator[GatedProcessor]:
    gated = GatedProcessor()
    yield gated
    gated.release.set()  # never leave a decode thread waiting


def timed(call: object) -> float:
    began = time.monotonic()
    assert callable(call)
    call()
    return time.monotonic() - began


def test_another_accounts_upload_is_not_held_up_by_slow_decodes(
    processor: GatedProcessor,
) -> None:
    images = service(processor, DecodeSlots(slots=2, per_account=1, queue_per_account=4, wait_s=10))
    with ThreadPoolExecutor(2) as pool:
        slow: list[Future[Image]] = [pool.submit(upload, images, A, b"slow %d" % i) for i in (1, 2)]
        assert processor.slow_started.acquire(timeout=5)

        assert timed(lambda: upload(images, B, b"small")) < PROMPT_S
        # A's second expensive image waits for A's own slot, though one is free again.
        assert processor.slow_count == 1
        assert not any(f.done() for f in slow)

        processor.release.set()
        assert [f.result(timeout=10).account_id for f in slow] == ["acct-a", "acct-a"]
    assert processor.slow_count == 2


def test_an_account_with_a_full_queue_gets_429_at_once(processor: GatedProcessor) -> None:
    images = service(processor, DecodeSlots(slots=2, per_account=1, queue_per_account=1, wait_s=10))
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(upload, images, A, b"slow 1")
        assert processor.slow_started.acquire(timeout=5)
        later = [pool.submit(upload, images, A, b"slow %d" % i) for i in (2, 3)]

        # One of A's later uploads waits (its queue holds one); the other is refused at once.
        done, _ = wait(later, timeout=PROMPT_S, return_when=FIRST_COMPLETED)
        assert len(done) == 1
        refused = done.pop().exception()
        assert isinstance(refused, RateLimited)
        assert refused.retry_after == RETRY_AFTER_S

        processor.release.set()
        first.result(timeout=10)
    assert processor.slow_count == 2


def test_a_wait_past_the_bound_is_503(processor: GatedProcessor) -> None:
    shares = DecodeSlots(slots=1, per_account=1, queue_per_account=4, wait_s=0.3)
    images = service(processor, shares, slots=1)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(upload, images, A, b"slow")
        assert processor.slow_started.acquire(timeout=5)

        began = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            upload(images, B, b"small")
        assert 0.25 <= time.monotonic() - began < PROMPT_S
        assert caught.value.retry_after == RETRY_AFTER_S
        processor.release.set()
        slow.result(timeout=10)


def patiently(shares: DecodeSlots) -> bool:
    with shares.hold("b", bounded=False):
        return True


def test_generated_images_wait_for_a_slot_but_are_never_refused() -> None:
    shares = DecodeSlots(slots=1, per_account=1, queue_per_account=1, wait_s=0.2)
    holding, release = threading.Event(), threading.Event()

    def slow() -> None:
        with shares.hold("a"):
            holding.set()
            assert release.wait(10)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(slow)
        assert holding.wait(5)
        with pytest.raises(Unavailable), shares.hold("b"):  # an upload: bounded wait
            pass
        patient = pool.submit(patiently, shares)
        with pytest.raises(TimeoutError):
            patient.result(timeout=0.5)  # still waiting well past wait_s, not refused
        release.set()
        first.result(timeout=5)
        assert patient.result(timeout=5)


def test_one_account_alone_borrows_free_slots_for_cheap_decodes_only() -> None:
    shares = DecodeSlots(slots=2, per_account=1, queue_per_account=4, wait_s=0.2)
    with shares.hold("a", cost=12_000_000):  # its share: a 12 MP photo
        with shares.hold("a", cost=12_000_000):  # nobody else waits: the free slot is lent
            pass
        for expensive in (49_000_000, None):  # big, or a header that does not tell
            with pytest.raises(Unavailable), shares.hold("a", cost=expensive):
                pass


def wait_for_queue(shares: DecodeSlots, length: int) -> None:
    deadline = time.monotonic() + 5
    while shares.waiting < length:
        assert time.monotonic() < deadline, "the upload never queued"
        time.sleep(0.005)  # the queue has no event to await; poll it briefly


def test_another_account_gets_the_next_slot_before_more_borrowing() -> None:
    shares = DecodeSlots(slots=2, per_account=1, queue_per_account=4, wait_s=10)
    order: list[str] = []
    borrowed, release_borrowed = threading.Event(), threading.Event()

    def hold(account: str, *, until: threading.Event | None = None) -> None:
        with shares.hold(account, cost=1_000):
            order.append(account)
            if until is not None:
                borrowed.set()
                assert until.wait(10)

    with shares.hold("a", cost=1_000), ThreadPoolExecutor(3) as pool:
        lender = pool.submit(hold, "a", until=release_borrowed)
        assert borrowed.wait(5)  # both slots are A's now
        b = pool.submit(hold, "b")
        wait_for_queue(shares, 1)  # B queues first; then A asks for one more
        more_a = pool.submit(hold, "a")
        wait_for_queue(shares, 2)
        assert order == ["a"]
        release_borrowed.set()
        for future in (lender, b, more_a):
            future.result(timeout=5)
    # The slot A gave back went to B, under its share, not to A's next cheap decode.
    assert order == ["a", "b", "a"]
