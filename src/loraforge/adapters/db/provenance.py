"""The signing key and training receipts in SQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import SigningKeyRow, TrainingReceiptRow
from loraforge.domain.provenance import Receipt, SigningKey

SLOT = "receipts"


class SqlSigningKeyRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self) -> SigningKey | None:
        row = self._s.scalars(select(SigningKeyRow).where(SigningKeyRow.slot == SLOT)).first()
        if row is None:
            return None
        return SigningKey(
            id=row.key_id, private=row.private_key, public=row.public_key, created_at=row.created_at
        )

    def add_if_absent(self, key: SigningKey) -> None:
        # A savepoint, flushed now: the primary key (one slot) admits one key. On PostgreSQL a
        # concurrent insert of the slot waits for the other transaction, then fails here once
        # that one commits; either way the caller reads back the one key that was stored.
        try:
            with self._s.begin_nested():
                self._s.add(
                    SigningKeyRow(
                        slot=SLOT,
                        key_id=key.id,
                        private_key=key.private,
                        public_key=key.public,
                        created_at=key.created_at,
                    )
                )
        except IntegrityError:
            pass


class SqlTrainingReceiptRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, receipt: Receipt) -> None:
        self._s.add(
            TrainingReceiptRow(
                training_id=receipt.training_id,
                key_id=receipt.key_id,
                payload=receipt.payload,
                signature=receipt.signature,
                created_at=receipt.created_at,
            )
        )

    def get(self, training_id: str) -> Receipt | None:
        row = self._s.get(TrainingReceiptRow, training_id)
        if row is None:
            return None
        return Receipt(
            training_id=row.training_id,
            key_id=row.key_id,
            payload=row.payload,
            signature=row.signature,
            created_at=row.created_at,
        )
