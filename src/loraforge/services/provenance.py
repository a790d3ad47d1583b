"""An image's lineage and its erasure (issue 13 §5).

Lineage: the trainings whose frozen manifest used the image (by its id, or by its bytes: a
training of an identical copy trained on the same picture), soft-deleted ones too, and the
predictions that mixed those trainings.

Erasure (consent withdrawn): every image of the account holding those bytes is deleted with
its variants, and every training that used them loses its artifacts (``ARTIFACTS``) and gains
``erased_at``; its status, history and receipt (hashes and captions) stay. Predictions not
ended yet that start from one of those pictures lose their hold on it: they fail when they
run, their input gone. One write transaction detaches everything; the blobs are then removed
unless another row (another account's identical upload, say) still references them. A
training still running is asked to stop; should it finish first, its weights are not kept
(``TrainingRunner``).
The local copies of the weights that workers keep go too: this process's at once, other
workers' before their next prediction (``LoraCache``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from loraforge.domain.entities import Image, Principal
from loraforge.domain.errors import NotFound
from loraforge.domain.provenance import uses_image
from loraforge.domain.work import Prediction, Training
from loraforge.ports import BlobStore, Clock, UnitOfWork, UnitOfWorkFactory
from loraforge.services import training_samples
from loraforge.services.blob_refs import BlobReferences
from loraforge.services.lora_cache import LoraCache


def _weights(uow: UnitOfWork, training: Training) -> set[str]:
    keys = {training.artifact_key} if training.artifact_key else set()
    training.artifact_key = None
    return keys


def _manifest_pins(uow: UnitOfWork, training: Training) -> set[str]:
    return uow.trainings.unpin(training.id)


def _samples_and_checkpoints(uow: UnitOfWork, training: Training) -> set[str]:
    return training_samples.purge(uow, [training.id])


ARTIFACTS: tuple[Callable[[UnitOfWork, Training], set[str]], ...] = (
    _weights,
    _manifest_pins,
    _samples_and_checkpoints,
)
"""Every kind of blob that belongs to a training's artifacts: each entry detaches its kind from
the training inside the erase's transaction and returns the blob keys to remove."""


@dataclass(frozen=True)
class Lineage:
    image: Image
    trainings: list[Training]
    predictions: list[Prediction]


@dataclass(frozen=True)
class Erasure:
    image_id: str
    erased_at: datetime
    image_ids: list[str]  # every image of the account with those bytes
    training_ids: list[str]
    blobs_removed: int


class ProvenanceService:
    def __init__(
        self, *, uow: UnitOfWorkFactory, blobs: BlobStore, clock: Clock, lora_cache: LoraCache
    ) -> None:
        self._uow = uow
        self._refs = BlobReferences(uow=uow, blobs=blobs)
        self._clock = clock
        self._lora_cache = lora_cache

    def lineage(self, who: Principal, image_id: str) -> Lineage:
        with self._uow() as uow:
            image, copies = self._image(uow, who, image_id)
            trainings = self._users(uow, who, image, copies)
            predictions = uow.predictions.using_trainings(who.account_id, {t.id for t in trainings})
        return Lineage(image=image, trainings=trainings, predictions=predictions)

    def erase(self, who: Principal, image_id: str) -> Erasure:
        now = self._clock.now()
        keys: set[str] = set()
        with self._uow(write=True) as uow:
            image, copies = self._image(uow, who, image_id)
            users = self._users(uow, who, image, copies)
            for copy in copies:
                keys |= copy.blob_keys()
                uow.images.delete(copy.id)
            for found in sorted(users, key=lambda t: t.id):  # lock order: by id
                training = uow.trainings.get(found.id, lock="update")
                assert training is not None
                for detach in ARTIFACTS:
                    keys |= detach(uow, training)
                training.erased_at = training.erased_at or now
                if not training.status.terminal and not training.cancel_requested:
                    training.request_cancel(now)
                uow.trainings.update(training)
            # Queued predictions lose their holds on these pictures (their runs then fail,
            # an input gone). Locked first: a prediction committing a hold on one commits
            # before this (and loses it here) or reads the image again after (and finds none).
            uow.blob_locks.lock(keys)
            uow.predictions.unpin_blobs(keys)
            uow.commit()
        removed = self._refs.release(keys, wait=True)
        training_ids = sorted(t.id for t in users)
        self._lora_cache.drop(training_ids)  # after the commit: see LoraCache on the race
        return Erasure(
            image_id=image_id,
            erased_at=now,
            image_ids=[c.id for c in copies],
            training_ids=training_ids,
            blobs_removed=removed,
        )

    @staticmethod
    def _image(uow: UnitOfWork, who: Principal, image_id: str) -> tuple[Image, list[Image]]:
        image = uow.images.get(who.account_id, image_id)
        if image is None:
            raise NotFound(f"No image {image_id}.")
        return image, uow.images.with_sha256(who.account_id, image.sha256)

    @staticmethod
    def _users(
        uow: UnitOfWork, who: Principal, image: Image, copies: list[Image]
    ) -> list[Training]:
        ids = {c.id for c in copies}
        return [
            t
            for t in uow.trainings.list_for_account(who.account_id)
            if uses_image(t, image_ids=ids, sha256=image.sha256)
        ]
