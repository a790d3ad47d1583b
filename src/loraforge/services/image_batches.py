"""Several uploads to one model, stored in one transaction (a training-set archive).

Each upload goes the way a single one goes (``ImageService.ingest``): its caption is checked,
its bytes decoded and stored, its Image built (``uploaded_image``). An upload that a single
upload would refuse for its bytes or its caption gets that same error, and the others go on.
Then one write transaction, with the model row locked, takes as many as the model still has
room for (the per-model limit holds for the whole batch, and against uploads racing it),
queues their measuring and captioning, and adopts their blobs; the others get
``LimitReached``. A failing blob store or database fails the whole batch and leaves nothing:
no row, and the blobs it created are released again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from loraforge.domain.entities import Image, ImageFormat, ImageKind, Limits, Principal
from loraforge.domain.errors import (
    BadRequest,
    DomainError,
    ImageRejected,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedFormat,
)
from loraforge.ports import Clock, IdFactory, UnitOfWorkFactory
from loraforge.services.captions import caption_fields
from loraforge.services.image_bytes import ImageBytes, StoredImage, Upload, sanitize_name
from loraforge.services.model_room import full, room_left
from loraforge.services.training_image_jobs import TrainingImageJobs

# What a single upload is refused for because of its own bytes or caption: such an error
# refuses one upload of a batch. Any other (a full disk, a database that is down) fails it all.
UPLOAD_ERRORS = (UnsupportedFormat, ImageRejected, PayloadTooLarge, InvalidInput, BadRequest)


def uploaded_image(
    who: Principal,
    upload: Upload,
    stored: StoredImage,
    *,
    image_id: str,
    kind: ImageKind,
    model_id: str | None,
    origin: str,
    at: datetime,
    captioned: dict[str, Any],
) -> Image:
    """The Image of an upload whose bytes are stored; ``captioned``: ``caption_fields``."""
    return Image(
        id=image_id,
        account_id=who.account_id,
        model_id=model_id,
        kind=kind,
        name=sanitize_name(upload.name),
        created_at=at,
        last_used_at=at,
        origin=origin,
        **captioned,
        **stored.fields(),
    )


@dataclass(frozen=True)
class Outcome:
    """What became of one upload of a batch: its image, or why it was not stored."""

    image: Image | None = None
    error: DomainError | None = None


@dataclass(frozen=True)
class _Prepared:
    index: int  # of the upload in the batch
    image: Image
    stored: StoredImage
    original: BinaryIO


class ImageBatches:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        bytes_: ImageBytes,
        clock: Clock,
        new_id: IdFactory,
        limits: Limits,
        followups: TrainingImageJobs,
    ) -> None:
        self._uow = uow
        self._bytes = bytes_
        self._clock = clock
        self._new_id = new_id
        self._limit = limits.max_images_per_type
        self._followups = followups

    def ingest(
        self,
        who: Principal,
        uploads: Sequence[Upload],
        *,
        kind: ImageKind,
        model_id: str,
        allowed: frozenset[ImageFormat],
        origin: str,
    ) -> list[Outcome]:
        """One outcome per upload, in their order; the first ones take the model's places.
        ``NotFound`` without the model."""
        with self._uow() as uow:
            room = room_left(uow, who, model_id, kind, limit=self._limit, lock=False)
        now = self._clock.now()
        errors: dict[int, DomainError] = {}
        prepared: list[_Prepared] = []
        try:
            for n, upload in enumerate(uploads):
                if len(prepared) >= room:  # no bytes are decoded for a place there is not
                    errors[n] = full(self._limit)
                    continue
                try:
                    # Listings order by creation time: keep the batch in its order.
                    at = now + timedelta(microseconds=len(prepared))
                    prepared.append(
                        self._prepare(who, n, upload, kind, model_id, allowed, origin, at)
                    )
                except UPLOAD_ERRORS as exc:
                    errors[n] = exc
            kept, runs = self._commit(who, model_id, kind, prepared)
        except BaseException:
            self._bytes.discard(b for p in prepared for b in p.stored.blobs())
            raise
        left_out = prepared[len(kept) :]  # places taken meanwhile by uploads racing this one
        self._bytes.discard(b for p in left_out for b in p.stored.blobs())
        errors.update({p.index: full(self._limit) for p in left_out})
        self._followups.submit(runs)
        images = {p.index: p.image for p in kept}
        return [Outcome(image=images.get(n), error=errors.get(n)) for n in range(len(uploads))]

    def _prepare(
        self,
        who: Principal,
        index: int,
        upload: Upload,
        kind: ImageKind,
        model_id: str,
        allowed: frozenset[ImageFormat],
        origin: str,
        at: datetime,
    ) -> _Prepared:
        captioned = caption_fields(kind, upload.caption)  # before decoding, as a single upload
        stored = self._bytes.ingest(upload.stream, allowed, account_id=who.account_id)
        image = uploaded_image(
            who,
            upload,
            stored,
            image_id=self._new_id(),
            kind=kind,
            model_id=model_id,
            origin=origin,
            at=at,
            captioned=captioned,
        )
        return _Prepared(index, image, stored, upload.stream)

    def _commit(
        self, who: Principal, model_id: str, kind: ImageKind, prepared: list[_Prepared]
    ) -> tuple[list[_Prepared], list[str]]:
        """Store the rows of as many as there is room for now, in one transaction; returns
        those and the caption runs to submit."""
        if not prepared:
            return [], []
        with self._uow(write=True) as uow:
            room = room_left(uow, who, model_id, kind, limit=self._limit, lock=True)
            kept = prepared[:room]
            for p in kept:
                uow.images.add(p.image)
            runs = self._followups.queue(uow, [p.image for p in kept])
            self._bytes.adopt_all(uow, [(p.stored, p.original) for p in kept])
            uow.commit()
        return kept, runs
