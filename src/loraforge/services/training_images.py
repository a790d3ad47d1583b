"""A model's training images beyond plain upload: copies of stored images, captions, pairs.

Copies share the original's blobs (content-addressed), so adding an uploaded asset as a training
image stores no bytes again. A caption is written by the client (``set_caption``) or, for images
without one, by the configured captioning model in a background job (``CaptionService``). Both
feed the training manifest (``TrainingService.start``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta

from loraforge.domain.captions import CaptionSource, user_caption
from loraforge.domain.entities import Image, ImageKind, Limits, Principal, TrainingPair
from loraforge.domain.errors import BadRequest, InvalidInput, LimitReached, NotFound
from loraforge.ports import BlobStore, Clock, IdFactory, UnitOfWork, UnitOfWorkFactory
from loraforge.services.blob_refs import BlobReferences
from loraforge.services.training_image_jobs import TrainingImageJobs

TRAINING = ImageKind.TRAINING
MAX_INSTRUCTION = 2000
MAX_PAIRS = 1000


class TrainingImageService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        blobs: BlobStore,
        clock: Clock,
        new_id: IdFactory,
        limits: Limits,
        followups: TrainingImageJobs | None = None,
    ) -> None:
        """``followups``: queues what the copies get (measuring, captioning)."""
        self._uow = uow
        self._refs = BlobReferences(uow=uow, blobs=blobs)
        self._followups = followups or TrainingImageJobs()
        self._clock = clock
        self._new_id = new_id
        self._limits = limits

    def copy_in(
        self, who: Principal, model_id: str, image_ids: Sequence[str], *, origin: str
    ) -> list[Image]:
        """New training images of the model with the bytes of the account's stored images:
        all of them or none, within the per-model limit. Captions are copied; copies without
        one are captioned by a job when a captioning model is configured."""
        if not image_ids:
            raise InvalidInput("Name at least one image to copy.")
        now = self._clock.now()
        with self._uow(write=True) as uow:
            if uow.models.get(who.account_id, model_id, lock=True) is None:
                raise NotFound(f"No model {model_id}.")
            limit = self._limits.max_images_per_type
            if uow.images.count_for_model(model_id, TRAINING) + len(image_ids) > limit:
                raise LimitReached(f"The model can hold at most {limit} training images.")
            copies = [
                dataclasses.replace(
                    self._source(uow, who, image_id),
                    id=self._new_id(),
                    model_id=model_id,
                    kind=TRAINING,
                    prediction_id=None,
                    origin=origin,
                    # Listings order by creation time: keep the batch in the order given.
                    created_at=now + timedelta(microseconds=n),
                    last_used_at=now,
                )
                for n, image_id in enumerate(image_ids)
            ]
            for copy in copies:
                uow.images.add(copy)
            # A source deleted since we read it may have had its bytes removed (PostgreSQL;
            # SQLite serialises writers): hold them from here to the commit, or refuse.
            if self._refs.pin(uow, {k for c in copies for k in c.blob_keys()}):
                raise NotFound("An image was deleted while it was being copied.")
            runs = self._followups.queue(uow, copies)
            uow.commit()
        self._followups.submit(runs)
        return copies

    def set_caption(
        self,
        who: Principal,
        image_id: str,
        caption: str,
        *,
        model_id: str | None = None,
        kind: ImageKind | None = None,
    ) -> Image:
        """The client's caption for a training image (``captionSource`` becomes ``user``; an
        empty one too: automatic captioning then leaves it alone). ``model_id``/``kind``
        scope the lookup (404 outside it); another kind of image is a 422 naming ``caption``."""
        text = user_caption(caption)
        with self._uow(write=True) as uow:
            image = uow.images.get(who.account_id, image_id)
            if (
                image is None
                or (model_id is not None and image.model_id != model_id)
                or (kind is not None and image.kind is not kind)
            ):
                raise NotFound(f"No image {image_id}.")
            if image.kind is not TRAINING:
                raise InvalidInput(
                    "Only training images (type modelInput) have a caption.", field="caption"
                )
            image.caption, image.caption_source = text, CaptionSource.USER
            uow.images.update(image)
            uow.commit()
        return image

    def replace_pairs(
        self, who: Principal, model_id: str, pairs: Sequence[TrainingPair]
    ) -> list[TrainingPair]:
        """Set the model's pairs; every image named must be a training image of that model."""
        if len(pairs) > MAX_PAIRS:
            raise InvalidInput(f"At most {MAX_PAIRS} pairs.")
        with self._uow(write=True) as uow:
            if uow.models.get(who.account_id, model_id, lock=True) is None:
                raise NotFound(f"No model {model_id}.")
            for n, pair in enumerate(pairs):
                if len(pair.instruction) > MAX_INSTRUCTION:
                    raise InvalidInput(f"Pair {n}: the instruction is over {MAX_INSTRUCTION}.")
                for image_id in (pair.source_image_id, pair.target_image_id):
                    image = uow.images.get(who.account_id, image_id)
                    if image is None or image.model_id != model_id or image.kind is not TRAINING:
                        raise BadRequest(
                            f"Pair {n}: {image_id} is not a training image of this model.",
                            code="not_a_training_image",
                        )
            uow.pairs.replace(model_id, list(pairs))
            uow.commit()
        return list(pairs)

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def _source(uow: UnitOfWork, who: Principal, image_id: str) -> Image:
        image = uow.images.get(who.account_id, image_id)
        if image is None:
            raise NotFound(f"No image {image_id}.")
        return image
