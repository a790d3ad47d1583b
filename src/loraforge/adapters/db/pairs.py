"""Training pairs (Scenario): a model's source -> target images with instructions, in order."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import TrainingPairRow
from loraforge.domain.entities import TrainingPair


class SqlTrainingPairRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def replace(self, model_id: str, pairs: list[TrainingPair]) -> None:
        self._s.execute(delete(TrainingPairRow).where(TrainingPairRow.model_id == model_id))
        self._s.add_all(
            TrainingPairRow(
                model_id=model_id,
                position=n,
                source_image_id=p.source_image_id,
                target_image_id=p.target_image_id,
                instruction=p.instruction,
            )
            for n, p in enumerate(pairs)
        )

    def list(self, model_id: str) -> list[TrainingPair]:
        rows = self._s.scalars(
            select(TrainingPairRow)
            .where(TrainingPairRow.model_id == model_id)
            .order_by(TrainingPairRow.position)
        )
        return [
            TrainingPair(
                source_image_id=r.source_image_id,
                target_image_id=r.target_image_id,
                instruction=r.instruction,
            )
            for r in rows
        ]
