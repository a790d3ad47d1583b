from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from loraforge.api.schemas.common import WireModel

# A display name is what people see in lists: not empty, not only spaces (stored stripped).
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ModelCreate(WireModel):
    displayName: DisplayName = Field(examples=["Summer Collection Style Model"])
    customModelType: str | None = Field(None, max_length=100)
    baseModel: str | None = Field(
        None, max_length=100, description="A name from GET /v1/base-models; default: the default."
    )


class ModelRename(WireModel):
    updatedDisplayName: DisplayName = Field(examples=["Summer Dresses Style Model"])


class ModelRead(BaseModel):
    id: str
    displayName: str
    customModelType: str | None
    baseModel: str
    createdAt: datetime
    updatedAt: datetime


class ModelPage(BaseModel):
    items: list[ModelRead]
    total: int
    pageNum: int
    pageSize: int
