"""Generated images (prediction outputs): stored by a worker, committed with the prediction.

The worker stores an output's blobs first (``prepare``), then adds its row inside the
transaction that completes the prediction (``add``), which adopts the blobs: the same seed
gives the same bytes, so an earlier prediction's outputs may share them and be deleted just
then (see ``blob_refs``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from loraforge.domain.entities import ALL_FORMATS, Image, ImageKind
from loraforge.ports import Clock, IdFactory, UnitOfWork
from loraforge.services.image_bytes import ImageBytes, PreparedImage


class OutputImages:
    def __init__(self, *, bytes_: ImageBytes, clock: Clock, new_id: IdFactory) -> None:
        self._bytes = bytes_
        self._clock = clock
        self._new_id = new_id

    def prepare(
        self,
        *,
        account_id: str,
        model_id: str,
        prediction_id: str | None,
        data: bytes,
        name: str,
        kind: ImageKind = ImageKind.OUTPUT,
    ) -> PreparedImage:
        """Store a generated image's blobs; the caller adds it inside its own transaction
        (``add``), or calls ``discard`` on failure. ``kind``: ``sample`` for what a training
        renders while it trains (no prediction)."""
        # A finished prediction waits its turn for a slot but is never refused one.
        stored = self._bytes.ingest(
            io.BytesIO(data), ALL_FORMATS, account_id=account_id, bounded=False
        )
        now = self._clock.now()
        image = Image(
            id=self._new_id(),
            account_id=account_id,
            model_id=model_id,
            kind=kind,
            name=name,
            created_at=now,
            last_used_at=now,
            prediction_id=prediction_id,
            **stored.fields(),
        )
        return PreparedImage(image=image, stored=stored, data=data)

    def add(self, uow: UnitOfWork, prepared: Iterable[PreparedImage]) -> None:
        """Add prepared images in the caller's write transaction, adopting their blobs."""
        for p in prepared:
            uow.images.add(p.image)
            self._bytes.adopt(uow, p.stored, io.BytesIO(p.data))

    def discard(self, prepared: Iterable[PreparedImage]) -> None:
        """Remove the blobs of prepared images that were never committed."""
        self._bytes.discard(b for p in prepared for b in p.stored.blobs())
