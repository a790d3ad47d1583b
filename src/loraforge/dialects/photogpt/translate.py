"""Core entities and errors → PhotoGPT wire shapes: every field of a PhotoGPT answer is
written here, by pure functions that take the entity and the request's signed links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loraforge.dialects.photogpt.schemas import (
    ATTRIBUTE_FIELDS,
    Deleted,
    ErrorEnvelope,
    Ok,
    OkPage,
    PhotoImage,
    PhotoModel,
)
from loraforge.domain.entities import Image, ImageFormat, ImageVariant, Model, Page
from loraforge.http.image_types import TYPE_NAME_BY_KIND
from loraforge.http.links import ImageLinks
from loraforge.services.models import ModelStatus

ORIGIN = "photogpt"
NAMESPACE = "photogpt"  # key of the PhotoGPT fields in Model.attributes
DEFAULT_MODEL_TYPE = "person"  # PhotoGPT models are described by a person's traits

# Seed 000: "Supported formats: jpg, jpeg, webp, png, heic" (decided from the bytes).
FORMATS = frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.HEIF})


def image(entity: Image, links: ImageLinks) -> PhotoImage:
    return PhotoImage(
        createdAt=entity.created_at,
        data={
            "name": entity.name,
            "format": entity.format.value,
            "width": entity.width,
            "height": entity.height,
            "bytes": entity.size_bytes,
            "caption": entity.caption,
            "captionSource": entity.caption_source.value,
        },
        folderID=None,
        id=entity.id,
        liked=False,
        modelID=entity.model_id,
        publicMediaID=None,
        type=TYPE_NAME_BY_KIND[entity.kind],
        updatedAt=entity.created_at,
        upscaledImageID=None,
        upscaledImageURL=None,
        url=links.content(entity.id, ImageVariant.ORIGINAL),
    )


def model(entity: Model, status: ModelStatus) -> PhotoModel:
    fields: dict[str, Any] = dict(entity.attributes.get(NAMESPACE) or {})
    known = {name: fields.get(name) for name in ATTRIBUTE_FIELDS}
    return PhotoModel(
        createdAt=entity.created_at,
        id=entity.id,
        modelType=entity.custom_model_type or DEFAULT_MODEL_TYPE,
        status=status,
        updatedAt=entity.updated_at,
        name=entity.display_name,
        age=known["age"],
        gender=known["gender"],
        ethnicity=known["ethnicity"],
        eyeColor=known["eyeColor"],
    )


def one_image(entity: Image, links: ImageLinks) -> Ok[PhotoImage]:
    return Ok(result=image(entity, links))


def image_page(page: Page[Image], links: ImageLinks) -> OkPage[PhotoImage]:
    return OkPage(
        page=page.page_num,
        pageSize=page.page_size,
        result=[image(entity, links) for entity in page.items],
    )


def deleted(image_id: str) -> Ok[Deleted]:
    return Ok(result=Deleted(id=image_id))


def one_model(entity: Model, statuses: Mapping[str, ModelStatus]) -> Ok[PhotoModel]:
    """``statuses``: ``ModelService.statuses`` of the model (a model never trained is new)."""
    return Ok(result=model(entity, statuses.get(entity.id, ModelStatus.NEW)))


def model_page(page: Page[Model], statuses: Mapping[str, ModelStatus]) -> OkPage[PhotoModel]:
    return OkPage(
        page=page.page_num,
        pageSize=page.page_size,
        result=[model(m, statuses.get(m.id, ModelStatus.NEW)) for m in page.items],
    )


def error_body(status: int, code: str, message: str, field: str | None) -> dict[str, Any]:
    """PhotoGPT's error envelope; ``err`` carries the core's machine code."""
    return ErrorEnvelope(err=code, message=message).model_dump()
