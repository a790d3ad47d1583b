"""What a training made while it trained: samples, checkpoints, the sample sheet (§2)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import (
    TrainingCheckpointRow,
    TrainingSampleRow,
    TrainingSampleSheetRow,
)
from loraforge.domain.samples import Checkpoint, Sample

_ROWS = (TrainingSampleRow, TrainingCheckpointRow, TrainingSampleSheetRow)


class SqlTrainingOutputRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add_sample(self, sample: Sample) -> None:
        self._s.add(TrainingSampleRow(**vars(sample)))

    def samples(self, training_id: str) -> list[Sample]:
        rows = self._s.scalars(
            select(TrainingSampleRow)
            .where(TrainingSampleRow.training_id == training_id)
            .order_by(TrainingSampleRow.step, TrainingSampleRow.position)
        )
        return [
            Sample(
                training_id=r.training_id,
                image_id=r.image_id,
                step=r.step,
                position=r.position,
                prompt=r.prompt,
                seed=r.seed,
            )
            for r in rows
        ]

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._s.add(TrainingCheckpointRow(**vars(checkpoint)))

    def checkpoints(self, training_id: str) -> list[Checkpoint]:
        rows = self._s.scalars(
            select(TrainingCheckpointRow)
            .where(TrainingCheckpointRow.training_id == training_id)
            .order_by(TrainingCheckpointRow.step)
        )
        return [
            Checkpoint(training_id=r.training_id, step=r.step, loss=r.loss, blob_key=r.blob_key)
            for r in rows
        ]

    def set_sheet(self, training_id: str, image_id: str) -> None:
        self._s.merge(TrainingSampleSheetRow(training_id=training_id, image_id=image_id))

    def sheet(self, training_id: str) -> str | None:
        row = self._s.get(TrainingSampleSheetRow, training_id)
        return row.image_id if row is not None else None

    def remove(self, training_ids: Collection[str]) -> None:
        wanted = list(training_ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for table in _ROWS:
                self._s.execute(delete(table).where(table.training_id.in_(chunk)))
        self._s.flush()
