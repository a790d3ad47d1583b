"""The bytes side of images: decode and derive variants, store blobs, commit, clean up.

Writes go blob first, then the row in one transaction that adopts the blobs (see
``blob_refs``); when the transaction fails the blobs it created are released again (and blobs
shared with other rows are kept).
"""

from __future__ import annotations

import io
import logging
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, TypedDict

from loraforge.domain.entities import Image, ImageFormat, ProcessedImage, StoredBlob
from loraforge.domain.errors import Unavailable
from loraforge.ports import BlobStore, ImageProcessor, UnitOfWork, UnitOfWorkFactory
from loraforge.services.blob_refs import BlobReferences, Source, rewound
from loraforge.services.decode_slots import DecodeSlots

log = logging.getLogger(__name__)

Writer = Callable[[UnitOfWork], None]
MAX_NAME = 255


@dataclass(frozen=True)
class Upload:
    """Bytes from a client: a seekable stream positioned at the start, its file name, and the
    caption the client gave a training image (None: none; a captioning model may write one)."""

    stream: BinaryIO
    name: str | None = None
    caption: str | None = None


def sanitize_name(name: str | None) -> str | None:
    """File names are metadata only: keep the last path part, printable, bounded."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in unicodedata.normalize("NFC", base) if c.isprintable()).strip()
    return clean[:MAX_NAME] or None


class ContentFields(TypedDict):
    format: ImageFormat
    width: int
    height: int
    size_bytes: int
    sha256: str
    original_key: str
    display_key: str
    display_mime: str
    thumbnail_key: str
    thumbnail_mime: str


@dataclass(frozen=True)
class StoredImage:
    """Processed bytes whose blobs (original, display, thumbnail) are stored."""

    processed: ProcessedImage
    original: StoredBlob
    display: StoredBlob
    thumbnail: StoredBlob

    def blobs(self) -> list[StoredBlob]:
        return [self.original, self.display, self.thumbnail]

    def sources(self, original: BinaryIO) -> dict[str, Source]:
        """Where each blob's bytes come from, should they have to be stored again."""
        return {
            self.original.key: lambda: rewound(original),
            self.display.key: lambda: io.BytesIO(self.processed.display),
            self.thumbnail.key: lambda: io.BytesIO(self.processed.thumbnail),
        }

    def fields(self) -> ContentFields:
        """The fields of an Image that describe these bytes."""
        return ContentFields(
            format=self.processed.format,
            width=self.processed.width,
            height=self.processed.height,
            size_bytes=self.original.size,
            sha256=self.original.key,
            original_key=self.original.key,
            display_key=self.display.key,
            display_mime=self.processed.display_mime,
            thumbnail_key=self.thumbnail.key,
            thumbnail_mime=self.processed.thumbnail_mime,
        )


@dataclass(frozen=True)
class PreparedImage:
    """A generated image whose blobs are stored and whose row is not committed yet."""

    image: Image
    stored: StoredImage
    data: bytes


class ImageBytes:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        blobs: BlobStore,
        processor: ImageProcessor,
        decode_slots: int,
        shares: DecodeSlots | None = None,
    ) -> None:
        """``shares``: who may use the ``decode_slots`` threads when (default: anyone, in
        arrival order up to a minute)."""
        self._uow = uow
        self._blobs = blobs
        self._refs = BlobReferences(uow=uow, blobs=blobs)
        self._processor = processor
        # Decoding is CPU- and memory-heavy. A small dedicated pool both bounds how many run at
        # once and keeps them on the same few threads: glibc gives every thread that decodes a
        # malloc arena of its own and never returns it, so decoding on the server's many request
        # threads grew RSS by ~60 MB per thread (benchmarks/ingest.py).
        self._decoder = ThreadPoolExecutor(decode_slots, thread_name_prefix="decode")
        self._shares = shares or DecodeSlots(
            slots=decode_slots, per_account=decode_slots, queue_per_account=1 << 30, wait_s=60
        )

    def ingest(
        self,
        stream: BinaryIO,
        allowed: frozenset[ImageFormat],
        *,
        account_id: str,
        bounded: bool = True,
    ) -> StoredImage:
        """Validate and process the stream's image (in ``account_id``'s share of the decode
        slots; see ``DecodeSlots.hold`` for ``bounded``), then store its three blobs."""
        processed = self._process(stream, allowed, account_id, bounded)
        stored: list[StoredBlob] = []
        try:
            stream.seek(0)
            stored.append(self._blobs.put_file(stream))
            stored.append(self._blobs.put_bytes(processed.display))
            stored.append(self._blobs.put_bytes(processed.thumbnail))
        except BaseException:
            self.discard(stored)
            raise
        return StoredImage(processed, *stored)

    def ingest_display(
        self, stream: BinaryIO, allowed: frozenset[ImageFormat], *, account_id: str
    ) -> tuple[StoredBlob, bytes]:
        """Validate and process the stream's image as ``ingest`` does, but store only its
        display variant (orientation applied, metadata stripped): for pictures that a job
        reads and no one lists, such as a prediction's input pictures."""
        processed = self._process(stream, allowed, account_id, True)
        return self._blobs.put_bytes(processed.display), processed.display

    def hold(self, uow: UnitOfWork, sources: dict[str, Source], pinned: set[str]) -> set[str]:
        """In a write transaction about to commit rows that reference these blobs: adopt
        ``sources`` (blobs this request stored) and pin ``pinned`` (blobs of existing rows);
        returns the pinned keys whose blobs are gone (see ``blob_refs``)."""
        self._refs.adopt(uow, sources)
        return self._refs.pin(uow, pinned)

    def commit(self, write: Writer, stored: StoredImage, stream: BinaryIO) -> None:
        """Run ``write`` in a write transaction that adopts the stored blobs; on failure
        release the blobs this write created."""
        try:
            with self._uow(write=True) as uow:
                write(uow)
                self.adopt(uow, stored, stream)
                uow.commit()
        except BaseException:
            self.discard(stored.blobs())
            raise

    def adopt(self, uow: UnitOfWork, stored: StoredImage, original: BinaryIO) -> None:
        """Inside the transaction that commits rows referencing ``stored``: see ``blob_refs``."""
        self.adopt_all(uow, [(stored, original)])

    def adopt_all(self, uow: UnitOfWork, images: Iterable[tuple[StoredImage, BinaryIO]]) -> None:
        """``adopt`` for several images in one go: their keys are locked together, in the one
        order every writer uses (image by image, two writers could deadlock)."""
        sources: dict[str, Source] = {}
        for stored, original in images:
            sources.update(stored.sources(original))
        self._refs.adopt(uow, sources)

    def discard(self, stored: Iterable[StoredBlob]) -> None:
        """Remove the blobs this write created (not those that were already stored)."""
        self.release({b.key for b in stored if b.created})

    def release(self, keys: set[str]) -> None:
        """Remove blobs that no row references any more (see ``blob_refs``). Best effort: the
        rows are already committed (or were never written), so a database or blob store that
        fails just now leaves the bytes to the sweep instead of failing the request."""
        try:
            self._refs.release(keys)
        except Unavailable:
            log.warning("could not remove %d blobs now; the sweep will", len(keys), exc_info=True)

    def close(self) -> None:
        self._decoder.shutdown(wait=True)

    def _process(
        self, stream: BinaryIO, allowed: frozenset[ImageFormat], account_id: str, bounded: bool
    ) -> ProcessedImage:
        def decode() -> ProcessedImage:
            stream.seek(0)
            return self._processor.process(stream, allowed=allowed)

        cost = self._processor.decode_cost(stream)
        # A held share is a free decoder thread: the pool has as many threads as slots.
        with self._shares.hold(account_id, bounded=bounded, cost=cost):
            return self._decoder.submit(decode).result()
