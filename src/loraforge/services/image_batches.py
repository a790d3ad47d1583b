"""Several uploads to one model, stored in one transaction (a training-set archive).

Each upload is prepared as a single one is (``prepare``, which ``ImageService.ingest`` uses too):
its caption is checked, its bytes decoded and stored, its Image made. An upload that a single
upload would refuse for its bytes or its caption gets that same error, and the others go on.
Then one write transaction, with the model row locked, takes as many as the model still has
room for (the per-model limit holds for the whole batch, and against uploads racing it),
queues their measuring and captioning, and adopts their blobs; the others get
``LimitReached``. A failing blob store or database fails the whole batch and leaves nothing:
no row, and the blobs it created are released again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

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


@dataclass(frozen=True)
class Outcome:
    """What became of one upload of a batch: its image, or why it was not stored."""

    image: Image | None = None
    error: DomainError | None = None


@dataclass(frozen=True)
class PreparedUpload:
    """An upload whose bytes are stored and whose row is not written yet."""

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
        prepared: list[tuple[int, PreparedUpload]] = []  # with the upload's place in the batch
        try:
            for n, upload in enumerate(uploads):
                if len(prepared) >= room:  # no bytes are decoded for a place there is not
                    errors[n] = full(self._limit)
                    continue
                # Listings order by creation time: keep the batch in its order.
                at = now + timedelta(microseconds=len(prepared))
                try:
                    prepared.append(
                        (n, self.prepare(who, upload, kind, model_id, allowed, origin, at=at))
                    )
                except UPLOAD_ERRORS as exc:
                    errors[n] = exc
            kept, runs = self._commit(who, model_id, kind, [p for _, p in prepared])
        except BaseException:
            self._discard(p for _, p in prepared)
            raise
        left_out = prepared[len(kept) :]  # places taken meanwhile by uploads racing this one
        self._discard(p for _, p in left_out)
        errors.update({n: full(self._limit) for n, _ in left_out})
        self._followups.submit(runs)
        images = {n: p.image for n, p in prepared[: len(kept)]}
        return [Outcome(image=images.get(n), error=errors.get(n)) for n in range(len(uploads))]

    def prepare(
        self,
        who: Principal,
        upload: Upload,
        kind: ImageKind,
        model_id: str | None,
        allowed: frozenset[ImageFormat],
        origin: str,
        *,
        at: datetime | None = None,
    ) -> PreparedUpload:
        """What every upload goes through before its row is written, a single one too
        (``ImageService.ingest``): its caption checked, its bytes decoded and stored, its
        Image made (created ``at``, default now)."""
        captioned = caption_fields(kind, upload.caption)
        stored = self._bytes.ingest(upload.stream, allowed, account_id=who.account_id)
        now = at or self._clock.now()
        image = Image(
            id=self._new_id(),
            account_id=who.account_id,
            model_id=model_id,
            kind=kind,
            name=sanitize_name(upload.name),
            created_at=now,
            last_used_at=now,
            origin=origin,
            **captioned,
            **stored.fields(),
        )
        return PreparedUpload(image, stored, upload.stream)

    def _commit(
        self, who: Principal, model_id: str, kind: ImageKind, prepared: list[PreparedUpload]
    ) -> tuple[list[PreparedUpload], list[str]]:
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

    def _discard(self, prepared: Iterable[PreparedUpload]) -> None:
        """Release the blobs of uploads whose rows were not written (see ``ImageBytes``)."""
        self._bytes.discard(b for p in prepared for b in p.stored.blobs())
