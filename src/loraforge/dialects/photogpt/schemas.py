"""PhotoGPT wire shapes (seeds 000/001, reference/photogpt.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from loraforge.domain.captions import MAX_CAPTION
from loraforge.http.image_types import ImageTypeName
from loraforge.services.models import ModelStatus

Text64 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
# ``strict``: ``true`` is no age (lax mode would read it as 1).
Age = (
    Annotated[int, Field(ge=0, le=150, strict=True)]
    | Annotated[str, StringConstraints(max_length=32)]
)
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class VendorBody(BaseModel):
    """Request bodies ignore fields they do not know (vendor clients send more than we use);
    server-owned fields (status, owner, counts) are never read from them."""

    model_config = ConfigDict(extra="ignore")


class UploadData(VendorBody):
    """The ``data`` part of ``POST /images/upload``."""

    modelID: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    type: ImageTypeName
    caption: str | None = Field(None, max_length=MAX_CAPTION)  # a loraforge extension


class ModelBody(VendorBody):
    """``POST /models``: creates, or updates the model ``id`` when given."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    name: Name | None = None
    age: Age | None = None
    gender: Text64 | None = None
    ethnicity: Text64 | None = None
    eyeColor: Text64 | None = None
    modelType: Text64 | None = None

    def attributes(self) -> dict[str, Any]:
        """The PhotoGPT fields the core keeps uninterpreted (``Model.attributes``)."""
        return self.model_dump(include=set(ATTRIBUTE_FIELDS), exclude_none=True)


# Kept in ``Model.attributes``; ``name`` is the display name, ``modelType`` the custom model type.
ATTRIBUTE_FIELDS = ("age", "gender", "ethnicity", "eyeColor")


class PhotoImage(BaseModel):
    """The image object of upload, list and get answers."""

    createdAt: datetime
    data: dict[str, Any]
    folderID: str | None
    id: str
    liked: bool
    modelID: str | None
    publicMediaID: str | None
    type: str
    updatedAt: datetime
    upscaledImageID: str | None
    upscaledImageURL: str | None
    url: str


class PhotoModel(BaseModel):
    createdAt: datetime
    id: str
    modelType: str
    status: ModelStatus  # new | training | ready | deleted
    updatedAt: datetime
    name: str
    age: int | str | None
    gender: str | None
    ethnicity: str | None
    eyeColor: str | None


class Deleted(BaseModel):
    id: str


T = TypeVar("T")


class Ok(BaseModel, Generic[T]):
    result: T
    status: Literal["OK"] = "OK"


class OkPage(BaseModel, Generic[T]):
    page: int
    pageSize: int
    result: list[T]
    status: Literal["OK"] = "OK"


class ErrorEnvelope(BaseModel):
    err: str
    message: str
    result: None = None
    status: Literal["NOK"] = "NOK"
