"""Training receipts (issue 13 §5): signed when a training succeeds, frozen, served as they were.

``prepare`` does the slow part on the worker before the training's final transaction (hashing
the base model and every weights file the weights service serves); ``freeze`` builds, signs and
stores the receipt inside that transaction, once the stored training has its final status and
times. A training erased before it ended gets no receipt (it has no weights to vouch for).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import product

from loraforge.domain.entities import Principal
from loraforge.domain.errors import Conflict
from loraforge.domain.provenance import (
    Receipt,
    WeightsHash,
    canonical,
    receipt_payload,
)
from loraforge.domain.weights import WeightsDtype, WeightsFormat
from loraforge.domain.work import RunStatus, Training
from loraforge.ports import BaseModelCatalog, BaseModelHasher, Clock, UnitOfWork, UnitOfWorkFactory
from loraforge.services.base_models import base_model_named
from loraforge.services.signing_keys import SigningKeyService
from loraforge.services.trainings import TrainingService
from loraforge.services.weights import STORED, WeightsService

FILES = list(product(WeightsFormat, WeightsDtype))
"""Every file the weights service serves for one training: each format in each precision."""


@dataclass(frozen=True)
class PreparedReceipt:
    base_model_sha256: str
    stored_sha256: str
    weights: list[WeightsHash]


class ReceiptService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        trainings: TrainingService,
        weights: WeightsService,
        keys: SigningKeyService,
        catalog: BaseModelCatalog,
        hasher: BaseModelHasher,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._trainings = trainings
        self._weights = weights
        self._keys = keys
        self._catalog = catalog
        self._hasher = hasher
        self._clock = clock

    def prepare(self, training: Training, data: bytes) -> PreparedReceipt:
        """Hash the base model and, for the stored LoRA ``data``, every file served for it
        without a receipt hash in its metadata; a stored file the converter cannot read is the
        only file served (as it is)."""
        self._keys.current()  # made now, outside the training's final transaction
        base = base_model_named(self._catalog, training.manifest["baseModel"])
        if self._weights.convertible(data):
            served = {
                (weights_format, dtype): self._weights.variant(
                    training, data, weights_format=weights_format, dtype=dtype
                )
                for weights_format, dtype in FILES
            }
        else:
            served = {STORED: data}
        weights = [
            WeightsHash(format=f.value, dtype=d.value, sha256=hashlib.sha256(b).hexdigest())
            for (f, d), b in served.items()
        ]
        return PreparedReceipt(
            base_model_sha256=self._hasher.sha256(base),
            stored_sha256=hashlib.sha256(data).hexdigest(),
            weights=weights,
        )

    def freeze(self, uow: UnitOfWork, training_id: str, prepared: PreparedReceipt) -> None:
        """In the transaction that ended the training: sign and store its receipt, if it
        succeeded and was not erased meanwhile."""
        training = uow.trainings.get(training_id)
        if training is None or training.status is not RunStatus.SUCCEEDED:
            return
        if training.erased_at is not None or uow.training_receipts.get(training_id) is not None:
            return
        key = self._keys.current()
        payload = receipt_payload(
            training,
            base_model_sha256=prepared.base_model_sha256,
            stored_sha256=prepared.stored_sha256,
            weights=prepared.weights,
            key=key.id,
            issued_at=self._clock.now(),
        )
        key_id, signature = self._keys.sign(canonical(payload))
        uow.training_receipts.add(
            Receipt(
                training_id=training_id,
                key_id=key_id,
                payload=payload,
                signature=signature,
                created_at=self._clock.now(),
            )
        )

    def get(self, who: Principal, model_id: str, training_id: str) -> Receipt:
        """The training's receipt, as frozen. 409 ``no_receipt`` until it succeeded, or for a
        training that succeeded before receipts existed. Erased trainings keep theirs."""
        training = self._trainings.get(who, model_id, training_id)
        with self._uow() as uow:
            receipt = uow.training_receipts.get(training.id)
        if receipt is None:
            raise Conflict(
                f"Training {training_id} has no receipt (it is {training.status.value}"
                + (
                    ", and succeeded before receipts were signed)."
                    if training.artifact_key
                    else ")."
                ),
                code="no_receipt",
            )
        return receipt
