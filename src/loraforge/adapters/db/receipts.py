"""Task receipts: what a client-chosen task id produced, so a repeated id replays it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import TaskReceiptRow
from loraforge.domain.errors import Conflict
from loraforge.ports import TASK_CONFLICT


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
            raise Conflict("This task id was already used.", code=TASK_CONFLICT) from exc

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
