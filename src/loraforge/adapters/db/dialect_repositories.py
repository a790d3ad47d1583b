"""Repositories for task receipts (idempotent client task ids) and training pairs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import TaskReceiptRow, TrainingPairRow
from loraforge.domain.entities import TrainingPair
from loraforge.domain.errors import Conflict
from loraforge.ports import DUPLICATE_TASK


class SqlTaskReceiptRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self, account_id: str, scope: str, task_id: str) -> tuple[str, dict[str, Any]] | None:
        row = self._s.get(TaskReceiptRow, (account_id, scope, task_id))
        return (row.fingerprint, row.result) if row else None

    def add(
        self,
        account_id: str,
        scope: str,
        task_id: str,
        *,
        fingerprint: str,
        result: dict[str, Any],
        at: datetime,
    ) -> None:
        # A savepoint, flushed now: a concurrent transaction that stored the same task id first
        # surfaces here as a domain Conflict (the caller replays that first result) instead of
        # an IntegrityError at commit. PostgreSQL blocks this insert until the other commits.
        try:
            with self._s.begin_nested():
                self._s.add(
                    TaskReceiptRow(
                        account_id=account_id,
                        scope=scope,
                        task_id=task_id,
                        fingerprint=fingerprint,
                        result=result,
                        created_at=at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict("This task id was already used.", code=DUPLICATE_TASK) from exc

    def delete_before(self, scope_prefix: str, *, before: datetime, limit: int) -> int:
        key = (TaskReceiptRow.account_id, TaskReceiptRow.scope, TaskReceiptRow.task_id)
        oldest = (
            select(*key)
            .where(
                TaskReceiptRow.scope.startswith(scope_prefix, autoescape=True),
                TaskReceiptRow.created_at < before,
            )
            .limit(limit)
        )
        result = self._s.execute(delete(TaskReceiptRow).where(tuple_(*key).in_(oldest)))
        return int(result.rowcount)  # type: ignore[attr-defined]


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
