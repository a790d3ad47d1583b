from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field

from loraforge.api.schemas.common import WireModel
from loraforge.api.schemas.dataset import DatasetIssue
from loraforge.domain.captions import MAX_CAPTION
from loraforge.http.image_types import ImageTypeName

CaptionSourceName = Literal["user", "auto", "none"]
CAPTION_SOURCE = (
    "Who wrote `caption`: `user` (the client; an empty caption too), `auto` (the captioning "
    "model), `none` (nobody yet)."
)


class ImageRead(BaseModel):
    id: str
    url: str = Field(description="Signed, expiring link to the original bytes; no headers needed.")
    displayUrl: str = Field(description="Signed link to the display variant (≤ 2048 px).")
    thumbnailUrl: str = Field(description="Signed link to the thumbnail (≤ 256 px).")
    modelId: str | None
    type: Literal["modelInput", "auxiliaryType", "output", "sample"]
    format: str
    width: int
    height: int
    bytes: int
    sha256: str
    name: str | None
    caption: str = Field(description="What the picture shows (training images; else empty).")
    captionSource: CaptionSourceName = Field(description=CAPTION_SOURCE)
    createdAt: datetime
    lastUsedAt: datetime


class ImageUploaded(ImageRead):
    warnings: list[DatasetIssue] = Field(
        description="A training image's issues found so far by the dataset check (empty for "
        "other types); an upload is never refused for one."
    )


class ImagePage(BaseModel):
    items: list[ImageRead]
    total: int
    pageNum: int
    pageSize: int


class ImageJsonUpload(WireModel):
    image: str = Field(description="A data URI, bare base64, or an http(s) URL to fetch.")
    modelId: str | None = Field(None, validation_alias=AliasChoices("modelId", "modelID"))
    type: ImageTypeName
    name: str | None = Field(None, max_length=255)
    caption: str | None = Field(None, max_length=MAX_CAPTION, description="Training images only.")


class ImageUploadData(WireModel):
    """The JSON of a multipart ``data`` part (seeds 000/001); unknown fields are refused."""

    modelId: str | None = Field(None, validation_alias=AliasChoices("modelId", "modelID"))
    type: ImageTypeName
    caption: str | None = Field(None, max_length=MAX_CAPTION, description="Training images only.")


class CaptionUpdate(WireModel):
    """``PATCH`` of a training image: its caption (``captionSource`` becomes ``user``)."""

    caption: str = Field(max_length=MAX_CAPTION)


class TrainingDataRead(BaseModel):
    dataId: str
    url: str
    format: str
    width: int
    height: int
    bytes: int
    sha256: str
    name: str | None
    caption: str
    captionSource: CaptionSourceName = Field(description=CAPTION_SOURCE)
    createdAt: datetime


class TrainingDataContent(TrainingDataRead):
    dataUrl: str = Field(description="data:<mime>;base64,… with the original bytes.")


class DataCreated(BaseModel):
    dataId: str
    warnings: list[DatasetIssue] = Field(
        description="The dataset check's issues found so far for the new image; an upload "
        "is never refused for one."
    )
