"""Pictures a prediction starts from (``init_image``) or repaints by (``mask_image``).

A client names one as an image id of its account, a data URI, or a URL fetched with the SSRF
guard. Data URIs and URLs are decoded and checked exactly as uploads are (same decoder, same
limits) and only their display variant is stored; an image id's display variant is used as
is. Either way the prediction holds the blob (``prediction_blobs``) from the transaction that
commits it until the one that ends it (``release``): deleting the image or sweeping blobs cannot
take it from a queued run, and a finished prediction keeps no picture. Erasing the image drops
the holds at once (``ProvenanceService.erase``): a queued run then fails, its input gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from loraforge.domain.entities import ALL_FORMATS, Principal, StoredBlob
from loraforge.domain.errors import DomainError, NotFound
from loraforge.domain.work import InputImage
from loraforge.ports import UnitOfWork
from loraforge.services.blob_refs import Source
from loraforge.services.fetch_slots import FetchPermit
from loraforge.services.image_bytes import ImageBytes, Upload
from loraforge.services.inline_images import decode_inline, is_url

Fetch = Callable[[str], AbstractContextManager[Upload]]


def is_image_id(value: str) -> bool:
    """An image id rather than a data URI or a URL."""
    return not (value[:5].lower() == "data:" or is_url(value))


@dataclass(frozen=True)
class StoredInput:
    """A data-URI or URL picture decoded and stored before the prediction's transaction."""

    source: str
    blob: StoredBlob
    data: bytes  # the stored display variant, to store again should the blob go meanwhile


@contextlib.contextmanager
def named(field: str) -> Iterator[None]:
    """Domain errors raised inside name ``field`` unless they name one already."""
    try:
        yield
    except DomainError as exc:
        exc.field = exc.field or field
        raise


@dataclass(frozen=True)
class Named:
    """One input picture of a request: the field that names it and the value given."""

    field: str
    value: str


class InputPictures:
    def __init__(
        self,
        *,
        bytes_: ImageBytes,
        fetch: Fetch,
        admit: Callable[[Principal], FetchPermit],
        max_bytes: int,
    ) -> None:
        self._bytes = bytes_
        self._fetch = fetch
        self._admit = admit
        self._max_bytes = max_bytes

    def store(
        self, who: Principal, inputs: list[Named], *, permit: FetchPermit | None = None
    ) -> dict[str, StoredInput]:
        """Decode, check and store the data URIs' and URLs' pictures (not the image ids'),
        by field. URLs are fetched holding ``permit`` (else a fetch slot taken here). The
        caller passes the result to ``hold`` inside its transaction, or to ``discard``."""
        stored: dict[str, StoredInput] = {}
        fetching = any(is_url(n.value) for n in inputs)
        try:
            with permit or (self._admit(who) if fetching else contextlib.nullcontext()):
                for n in inputs:
                    if not is_image_id(n.value):
                        with named(n.field):
                            stored[n.field] = self._store_one(who, n.value)
        except BaseException:
            self.discard(stored)
            raise
        return stored

    def hold(
        self, uow: UnitOfWork, who: Principal, inputs: list[Named], stored: dict[str, StoredInput]
    ) -> dict[str, InputImage]:
        """Inside the write transaction that commits the prediction: the inputs it records,
        by field, their blobs held until the commit. An image id must name an image of
        ``who``'s account (``NotFound`` naming the field otherwise)."""
        held: dict[str, InputImage] = {}
        sources: dict[str, Source] = {}
        for n in inputs:
            if n.field in stored:
                s = stored[n.field]
                sources[s.blob.key] = _source(s.data)
                held[n.field] = InputImage(source=s.source, blob_key=s.blob.key)
                continue
            image = uow.images.get(who.account_id, n.value)
            if image is None:
                raise NotFound(f"No image {n.value}.", field=n.field)
            held[n.field] = InputImage(source=n.value, blob_key=image.display_key)
        pinned = {i.blob_key for i in held.values()} - set(sources)
        gone = self._bytes.hold(uow, sources, pinned)  # one call: keys locked in one order
        for field, picture in held.items():
            # The image was deleted since it was read: its blob is gone, or (read again now
            # that its blob is locked) an erasure that locked it first has committed.
            if picture.blob_key in gone or (
                field not in stored and uow.images.get(who.account_id, picture.source) is None
            ):
                raise NotFound(f"No image {picture.source}.", field=field)
        return held

    def release(self, keys: set[str]) -> None:
        """After the commit that ended a prediction and dropped its holds (``unpin``): remove
        its pictures' blobs unless another row (the image they came from, say) references
        them. Best effort: one the database cannot answer for now is left to the sweep."""
        self._bytes.release(keys)

    def discard(self, stored: dict[str, StoredInput]) -> None:
        """Remove the blobs ``store`` created for a prediction that was not committed."""
        self._bytes.discard(s.blob for s in stored.values())

    def _store_one(self, who: Principal, value: str) -> StoredInput:
        if is_url(value):
            with self._fetch(value) as upload:
                blob, data = self._bytes.ingest_display(
                    upload.stream, ALL_FORMATS, account_id=who.account_id
                )
            return StoredInput(source=value, blob=blob, data=data)
        raw = decode_inline(value, max_bytes=self._max_bytes)
        blob, data = self._bytes.ingest_display(
            io.BytesIO(raw), ALL_FORMATS, account_id=who.account_id
        )
        digest = hashlib.sha256(raw).hexdigest()
        return StoredInput(source=f"data:sha256,{digest}", blob=blob, data=data)


def _source(data: bytes) -> Source:
    return lambda: io.BytesIO(data)
