"""Core entities and errors → PhotoGPT wire shapes."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from loraforge.bootstrap import Container
from loraforge.dialects.photogpt.schemas import (
    ATTRIBUTE_FIELDS,
    ErrorEnvelope,
    PhotoImage,
    PhotoModel,
)
from loraforge.domain.entities import (
    TYPE_NAME_BY_KIND,
    Image,
    ImageFormat,
    ImageVariant,
    Model,
)
from loraforge.http.links import image_links
from loraforge.services.models import ModelStatus

ORIGIN = "photogpt"
NAMESPACE = "photogpt"  # key of the PhotoGPT fields in Model.attributes
DEFAULT_MODEL_TYPE = "person"  # PhotoGPT models are described by a person's traits

# Seed 000: "Supported formats: jpg, jpeg, webp, png, heic" (decided from the bytes).
FORMATS = frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.HEIF})


def image(request: Request, container: Container, entity: Image) -> PhotoImage:
    return PhotoImage(
        createdAt=entity.created_at,
        data={
            "name": entity.name,
            "format": entity.format.value,
            "width": entity.width,
            "height": entity.height,
            "bytes": entity.size_bytes,
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
        url=image_links(request).content(entity.id, ImageVariant.ORIGINAL),
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


def error_body(status: int, code: str, message: str, field: str | None) -> dict[str, Any]:
    """PhotoGPT's error envelope; ``err`` carries the core's machine code."""
    return ErrorEnvelope(err=code, message=message).model_dump()
