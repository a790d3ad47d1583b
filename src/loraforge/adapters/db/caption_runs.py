"""Caption runs: jobs that caption a model's training images."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import CaptionRunRow
from loraforge.domain.work import CaptionRun, Progress, RunStatus

_FIXED = ("id", "account_id", "model_id", "overwrite", "image_ids", "created_at")
_CHANGING = ("captioned", "failed", "error", "started_at", "finished_at")


def _run(row: CaptionRunRow) -> CaptionRun:
    return CaptionRun(
        status=RunStatus(row.status),
        progress=Progress(**row.progress),
        **{name: getattr(row, name) for name in (*_FIXED, *_CHANGING)},
    )


def _changing(run: CaptionRun) -> dict[str, Any]:
    values = {name: getattr(run, name) for name in _CHANGING}
    values.update(status=run.status.value, progress=vars(run.progress))
    return values


class SqlCaptionRunRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, run: CaptionRun) -> None:
        fixed = {name: getattr(run, name) for name in _FIXED}
        self._s.add(CaptionRunRow(**fixed, **_changing(run)))

    def get(self, run_id: str, *, account_id: str | None = None) -> CaptionRun | None:
        query = select(CaptionRunRow).where(CaptionRunRow.id == run_id)
        if account_id is not None:
            query = query.where(CaptionRunRow.account_id == account_id)
        row = self._s.scalars(query).first()
        return _run(row) if row else None

    def update(self, run: CaptionRun) -> None:
        self._s.execute(
            update(CaptionRunRow).where(CaptionRunRow.id == run.id).values(_changing(run))
        )
