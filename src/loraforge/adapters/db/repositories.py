"""SQLAlchemy implementations of the repository ports. Rows never leave this module."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, exists, func, or_, select, union_all, update
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import (
    AccountRow,
    ApiKeyRow,
    ImageQualityRow,
    ImageRow,
    ModelRow,
    PredictionBlobRow,
    PredictionModelRow,
    TrainingBlobRow,
    TrainingCheckpointRow,
    TrainingRow,
)
from loraforge.domain.captions import CaptionSource
from loraforge.domain.dataset import ImageQuality
from loraforge.domain.entities import Account, ApiKey, Image, ImageFormat, ImageKind, Model
from loraforge.domain.errors import NotFound


def _fields(obj: Any, names: Iterable[str]) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


_ACCOUNT = ("id", "name", "created_at")
_KEY = ("id", "account_id", "name", "prefix", "created_at", "revoked_at", "last_used_at")
_MODEL = (
    "id",
    "account_id",
    "display_name",
    "custom_model_type",
    "base_model",
    "created_at",
    "updated_at",
    "deleted_at",
    "attributes",
)
_IMAGE = (
    "id",
    "account_id",
    "model_id",
    "width",
    "height",
    "size_bytes",
    "sha256",
    "name",
    "caption",
    "description",
    "original_key",
    "display_key",
    "display_mime",
    "thumbnail_key",
    "thumbnail_mime",
    "created_at",
    "last_used_at",
    "prediction_id",
    "origin",
)


_QUALITY = tuple(f.name for f in dataclasses.fields(ImageQuality))


def _image(row: ImageRow) -> Image:
    return Image(
        kind=ImageKind(row.kind),
        format=ImageFormat(row.format),
        caption_source=CaptionSource(row.caption_source),
        **_fields(row, _IMAGE),
    )


def _image_values(image: Image) -> dict[str, Any]:
    values = _fields(image, _IMAGE)
    values.update(
        kind=image.kind.value,
        format=image.format.value,
        caption_source=image.caption_source.value,
    )
    return values


class SqlAccountRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, account: Account) -> None:
        self._s.add(AccountRow(**_fields(account, _ACCOUNT)))

    def get(self, account_id: str) -> Account | None:
        row = self._s.get(AccountRow, account_id)
        return Account(**_fields(row, _ACCOUNT)) if row else None


class SqlApiKeyRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, key: ApiKey, *, key_hash: str) -> None:
        self._s.add(ApiKeyRow(key_hash=key_hash, **_fields(key, _KEY)))

    def get(self, key_id: str) -> ApiKey | None:
        row = self._s.get(ApiKeyRow, key_id)
        return ApiKey(**_fields(row, _KEY)) if row else None

    def find_by_prefix(self, prefix: str) -> list[tuple[ApiKey, str]]:
        rows = self._s.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
        return [(ApiKey(**_fields(r, _KEY)), r.key_hash) for r in rows]

    def list(self) -> list[ApiKey]:
        rows = self._s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id))
        return [ApiKey(**_fields(r, _KEY)) for r in rows]

    def update(self, key: ApiKey) -> None:
        row = self._s.get_one(ApiKeyRow, key.id)
        row.name, row.revoked_at, row.last_used_at = key.name, key.revoked_at, key.last_used_at


class SqlModelRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, model: Model) -> None:
        self._s.add(ModelRow(**_fields(model, _MODEL)))

    def get(self, account_id: str, model_id: str, *, lock: bool = False) -> Model | None:
        query = select(ModelRow).where(
            ModelRow.id == model_id,
            ModelRow.account_id == account_id,
            ModelRow.deleted_at.is_(None),
        )
        if lock:
            query = query.with_for_update()
        row = self._s.scalars(query).first()
        return Model(**_fields(row, _MODEL)) if row else None

    def list(self, account_id: str, *, offset: int, limit: int) -> tuple[list[Model], int]:
        live = (ModelRow.account_id == account_id, ModelRow.deleted_at.is_(None))
        total = self._s.scalar(select(func.count()).select_from(ModelRow).where(*live)) or 0
        rows = self._s.scalars(
            select(ModelRow)
            .where(*live)
            .order_by(ModelRow.created_at.desc(), ModelRow.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return [Model(**_fields(r, _MODEL)) for r in rows], total

    def update(self, model: Model) -> None:
        row = self._s.get_one(ModelRow, model.id)
        for name in _MODEL[2:]:
            setattr(row, name, getattr(model, name))


class SqlImageRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, image: Image) -> None:
        self._s.add(ImageRow(**_image_values(image)))

    def _visible(self) -> Any:
        # Images of a soft-deleted model disappear with it; model-less images stay visible.
        # Correlated, so each candidate row costs one primary-key probe: as
        # ``model_id IN (SELECT … live models)`` SQLite listed every live model first.
        live_model = exists().where(ModelRow.id == ImageRow.model_id, ModelRow.deleted_at.is_(None))
        return or_(ImageRow.model_id.is_(None), live_model)

    def get(self, account_id: str, image_id: str) -> Image | None:
        row = self._s.scalars(
            select(ImageRow).where(
                ImageRow.id == image_id, ImageRow.account_id == account_id, self._visible()
            )
        ).first()
        return _image(row) if row else None

    def get_unscoped(self, image_id: str) -> Image | None:
        query = select(ImageRow).where(ImageRow.id == image_id, self._visible())
        row = self._s.scalars(query).first()
        return _image(row) if row else None

    def list_for_model(
        self, model_id: str, *, kinds: Iterable[ImageKind], offset: int, limit: int
    ) -> tuple[list[Image], int]:
        wanted = [k.value for k in kinds]
        owned = (ImageRow.model_id == model_id, ImageRow.kind.in_(wanted))
        mixed = self._mixed_outputs(model_id) if ImageKind.OUTPUT.value in wanted else None
        # Counted apart on purpose: COUNT(*) OVER () would read every matching row in full
        # before the LIMIT (2x slower for a model with 10,000 outputs, benchmarks/ingest.py);
        # the model's own count is answered from the index alone.
        own_total = self._count(owned)
        mixed_total = self._count(mixed) if mixed is not None else 0
        newest = (ImageRow.created_at.desc(), ImageRow.id.desc())
        if mixed is None or not mixed_total:  # the usual case: one walk down the model's index
            page = select(ImageRow).where(*owned).order_by(*newest).offset(offset).limit(limit)
            return [_image(r) for r in self._s.scalars(page)], own_total
        # Each side walks newest first and stops after offset + limit rows; the page is cut
        # from their union's keys, and only its rows are read in full.
        heads = [
            select(ImageRow.id, ImageRow.created_at)
            .where(*where)
            .order_by(*newest)
            .limit(offset + limit)
            .subquery()
            for where in (owned, mixed)
        ]
        keys = union_all(*(select(head.c.id, head.c.created_at) for head in heads)).subquery()
        page_ids = (
            select(keys.c.id)
            .order_by(keys.c.created_at.desc(), keys.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        rows = self._s.scalars(select(ImageRow).where(ImageRow.id.in_(page_ids)).order_by(*newest))
        return [_image(r) for r in rows], own_total + mixed_total

    def _count(self, where: tuple[Any, ...]) -> int:
        return self._s.scalar(select(func.count()).select_from(ImageRow).where(*where)) or 0

    def _mixed_outputs(self, model_id: str) -> tuple[Any, ...]:
        # Outputs of predictions that mixed the model after their first (owning) model.
        # Hidden while the owning model is deleted, as in ``get``.
        mixes = select(PredictionModelRow.prediction_id).where(
            PredictionModelRow.model_id == model_id
        )
        return (
            ImageRow.kind == ImageKind.OUTPUT.value,
            ImageRow.prediction_id.in_(mixes),
            self._visible(),
        )

    def count_for_model(self, model_id: str, kind: ImageKind) -> int:
        query = select(func.count()).where(
            ImageRow.model_id == model_id, ImageRow.kind == kind.value
        )
        return self._s.scalar(query) or 0

    def update(self, image: Image) -> None:
        values = _image_values(image)
        # One statement, so a delete committed since the caller read the row is seen here
        # (as a missing row) instead of failing the flush.
        result = self._s.execute(update(ImageRow).where(ImageRow.id == image.id).values(values))
        assert isinstance(result, CursorResult)
        if not result.rowcount:
            raise NotFound(f"No image {image.id}.")

    def delete(self, image_id: str) -> None:
        self._s.execute(delete(ImageRow).where(ImageRow.id == image_id))

    def referenced_blob_keys(self, keys: Iterable[str]) -> set[str]:
        wanted = list(set(keys))
        found: set[str] = set()
        columns = (
            ImageRow.original_key,
            ImageRow.display_key,
            ImageRow.thumbnail_key,
            TrainingBlobRow.blob_key,
            TrainingRow.artifact_key,
            TrainingCheckpointRow.blob_key,
            PredictionBlobRow.blob_key,
        )
        for column in columns:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.update(self._s.scalars(select(column).where(column.in_(chunk)).distinct()))
        return found

    def touch(self, image_id: str, at: datetime) -> None:
        self._s.execute(
            update(ImageRow)
            .where(ImageRow.id == image_id, ImageRow.last_used_at < at)
            .values(last_used_at=at)
        )

    def list_unused(self, origin: str, *, before: datetime, limit: int) -> list[Image]:
        rows = self._s.scalars(
            select(ImageRow)
            .where(ImageRow.origin == origin, ImageRow.last_used_at < before)
            .order_by(ImageRow.last_used_at, ImageRow.id)
            .limit(limit)
        )
        return [_image(r) for r in rows]

    def with_sha256(self, account_id: str, sha256: str) -> list[Image]:
        rows = self._s.scalars(
            select(ImageRow)
            .where(ImageRow.account_id == account_id, ImageRow.sha256 == sha256)
            .order_by(ImageRow.created_at, ImageRow.id)
        )
        return [_image(r) for r in rows]

    def first_with_sha256(self, model_id: str, kind: ImageKind, sha256: str) -> Image | None:
        row = self._s.scalars(
            select(ImageRow)
            .where(
                ImageRow.model_id == model_id,
                ImageRow.sha256 == sha256,
                ImageRow.kind == kind.value,
            )
            .order_by(ImageRow.created_at, ImageRow.id)
            .limit(1)
        ).first()
        return _image(row) if row else None

    def save_quality(self, image_id: str, display_key: str, quality: ImageQuality) -> bool:
        # The image row's lock orders concurrent measurings of one image (PostgreSQL) and
        # keeps its delete from slipping between the check and the write.
        current = self._s.scalar(
            select(ImageRow.display_key).where(ImageRow.id == image_id).with_for_update()
        )
        if current != display_key:
            return False
        self._s.merge(ImageQualityRow(image_id=image_id, display_key=display_key, **vars(quality)))
        self._s.flush()
        return True

    def qualities(self, image_ids: Iterable[str]) -> dict[str, ImageQuality]:
        wanted = list(set(image_ids))
        found: dict[str, ImageQuality] = {}
        for start in range(0, len(wanted), 500):
            rows = self._s.scalars(
                select(ImageQualityRow)
                .join(ImageRow, ImageRow.id == ImageQualityRow.image_id)
                .where(
                    ImageQualityRow.image_id.in_(wanted[start : start + 500]),
                    ImageQualityRow.display_key == ImageRow.display_key,
                )
            )
            found.update((r.image_id, ImageQuality(**_fields(r, _QUALITY))) for r in rows)
        return found

    def delete_unused(self, image_id: str, *, before: datetime) -> bool:
        result = self._s.execute(
            delete(ImageRow).where(ImageRow.id == image_id, ImageRow.last_used_at < before)
        )
        assert isinstance(result, CursorResult)
        return bool(result.rowcount)
