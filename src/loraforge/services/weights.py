"""A succeeded training's LoRA in the format and precision people load (issue 13 §1).

The blob store keeps one file per training: what the trainer wrote (diffusers names, fp32,
with loraforge's metadata since trainings began writing it). That file is served as it is;
every other format and precision is made from it on request: a conversion is a renaming and
at most a cast of a few megabytes, cheaper than keeping, counting and sweeping a second blob
per variant. Conversions are deterministic: the same training gives the same bytes.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from loraforge.domain.entities import Principal
from loraforge.domain.errors import Conflict, Gone, NotFound
from loraforge.domain.weights import (
    WeightsDtype,
    WeightsFormat,
    default_title,
    is_loraforge_metadata,
    lora_metadata,
    reformatted,
)
from loraforge.domain.work import Training
from loraforge.ports import BaseModelCatalog, BlobStore, LoraFiles, UnitOfWork, UnitOfWorkFactory
from loraforge.services.base_models import base_model_named
from loraforge.services.trainings import TrainingService, weights_key

STORED = (WeightsFormat.DIFFUSERS, WeightsDtype.FP32)
"""What the blob store holds: served byte for byte."""


def ensure_not_erased(training: Training) -> None:
    """410 ``erased``: an image the training used was erased, and its artifacts with it."""
    if training.erased_at is not None:
        raise Gone(
            f"Training {training.id} was erased (an image it used was erased): its weights, "
            "samples and export are gone; its receipt stays.",
            code="erased",
        )


def lora_title(uow: UnitOfWork, training: Training) -> str:
    """What a training's LoRA file calls itself: its model's name."""
    model = uow.models.get(training.account_id, training.model_id)
    return model.display_name if model is not None else default_title(training)


def checkpoint_key(uow: UnitOfWorkFactory, training: Training, step: int) -> str:
    """The blob of ``training``'s checkpoint at ``step``; 404 ``checkpoint_not_found``."""
    with uow() as reading:
        for checkpoint in reading.training_outputs.checkpoints(training.id):
            if checkpoint.step == step:
                return checkpoint.blob_key
    raise NotFound(
        f"Training {training.id} has no checkpoint at step {step}.", code="checkpoint_not_found"
    )


class WeightsService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        trainings: TrainingService,
        blobs: BlobStore,
        catalog: BaseModelCatalog,
        files: LoraFiles,
    ) -> None:
        self._uow = uow
        self._trainings = trainings
        self._blobs = blobs
        self._catalog = catalog
        self._files = files

    def open(
        self,
        who: Principal,
        model_id: str,
        training_id: str,
        *,
        weights_format: WeightsFormat = WeightsFormat.DIFFUSERS,
        dtype: WeightsDtype = WeightsDtype.FP32,
        step: int | None = None,
    ) -> BinaryIO:
        """The training's LoRA file as ``weights_format`` in ``dtype``, with its receipt's hash
        in its metadata (``served``). 409 ``not_succeeded`` until the training succeeded, 410
        ``erased`` once an image it used was erased. ``step``: its checkpoint at that step
        instead (while it trains too; without the receipt's hash, which binds the final file);
        404 ``checkpoint_not_found`` when it kept none there."""
        training = self._trainings.get(who, model_id, training_id)
        ensure_not_erased(training)  # before a checkpoint lookup would answer 404
        receipt = None
        if step is None:
            with self._uow() as uow:
                receipt = uow.training_receipts.get(training.id)
            stream = self.open_stored(training)
        else:
            stream = self.open_stored(training, checkpoint_key(self._uow, training, step))
        if receipt is None and (weights_format, dtype) == STORED:
            return stream  # a checkpoint, or a training from before receipts: as it was stored
        with stream:
            data = stream.read()
        receipt_sha256 = receipt.sha256 if receipt is not None else None
        return io.BytesIO(self.served(training, data, weights_format, dtype, receipt_sha256))

    def open_stored(self, training: Training, key: str | None = None) -> BinaryIO:
        """The stored file (``key``: a checkpoint's); 410 ``erased`` when the training was
        erased, also when the erase removed the bytes after the training was read."""
        ensure_not_erased(training)
        try:
            return self._blobs.open(key or weights_key(training))
        except NotFound:
            with self._uow() as uow:
                current = uow.trainings.get(training.id)
            if current is not None:
                ensure_not_erased(current)
            raise

    def served(
        self,
        training: Training,
        data: bytes,
        weights_format: WeightsFormat,
        dtype: WeightsDtype,
        receipt_sha256: str | None,
    ) -> bytes:
        """The file served for the stored ``data``: ``variant`` with the receipt's hash. A
        stored file that is no LoRA the converter reads is served as it is."""
        if (weights_format, dtype) == STORED and (
            receipt_sha256 is None or not self.convertible(data)
        ):
            return data
        return self.variant(
            training,
            data,
            weights_format=weights_format,
            dtype=dtype,
            receipt_sha256=receipt_sha256,
        )

    def convertible(self, data: bytes) -> bool:
        try:
            self._files.metadata(data)
        except ValueError:
            return False
        return True

    def variant(
        self,
        training: Training,
        data: bytes,
        *,
        weights_format: WeightsFormat,
        dtype: WeightsDtype,
        receipt_sha256: str | None = None,
    ) -> bytes:
        """The stored LoRA ``data`` of ``training`` as ``weights_format`` in ``dtype``.

        Its metadata is the stored file's (what the training wrote, so every variant says the
        same) or, for a file from before trainings wrote metadata, made from the training now;
        ``receipt_sha256`` adds the hash of the training's provenance receipt. 409
        ``weights_not_convertible`` for a stored file that is not a LoRA the converter reads.
        """
        base = base_model_named(self._catalog, training.manifest["baseModel"])
        try:
            metadata = self._files.metadata(data)
            if not is_loraforge_metadata(metadata):
                with self._uow() as uow:
                    title = lora_title(uow, training)
                metadata = lora_metadata(training, base, title=title)
            return self._files.convert(
                data,
                weights_format=weights_format,
                dtype=dtype,
                family=base.family,
                metadata=reformatted(metadata, weights_format, receipt_sha256=receipt_sha256),
            )
        except ValueError as exc:
            raise Conflict(
                f"The training's stored weights cannot be converted: {exc}",
                code="weights_not_convertible",
            ) from exc
