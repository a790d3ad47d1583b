from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from loraforge.api.schemas.common import WireModel
from loraforge.domain.entities import Model


class ModelCreate(WireModel):
    displayName: str = Field(max_length=200, examples=["Summer Collection Style Model"])
    customModelType: str | None = Field(None, max_length=100)
    baseModel: str | None = Field(
        None, max_length=100, description="A name from GET /v1/base-models; default: the default."
    )


class ModelRename(WireModel):
    updatedDisplayName: str = Field(max_length=200, examples=["Summer Dresses Style Model"])


class ModelRead(BaseModel):
    id: str
    displayName: str
    customModelType: str | None
    baseModel: str
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, model: Model) -> ModelRead:
        return cls(
            id=model.id,
            displayName=model.display_name,
            customModelType=model.custom_model_type,
            baseModel=model.base_model,
            createdAt=model.created_at,
            updatedAt=model.updated_at,
        )


class ModelPage(BaseModel):
    items: list[ModelRead]
    total: int
    pageNum: int
    pageSize: int
