"""Entity → wire shape, including the signed links every image carries."""

from __future__ import annotations

import base64

from fastapi import Request

from loraforge.api.schemas.images import ImageRead, TrainingDataContent, TrainingDataRead
from loraforge.bootstrap import Container
from loraforge.domain.entities import TYPE_NAME_BY_KIND, Image, ImageVariant
from loraforge.http.links import image_links


def content_url(
    request: Request, container: Container, image_id: str, variant: ImageVariant
) -> str:
    return image_links(request).content(image_id, variant)


def image_read(request: Request, container: Container, image: Image) -> ImageRead:
    def link(variant: ImageVariant) -> str:
        return content_url(request, container, image.id, variant)

    return ImageRead(
        id=image.id,
        url=link(ImageVariant.ORIGINAL),
        displayUrl=link(ImageVariant.DISPLAY),
        thumbnailUrl=link(ImageVariant.THUMBNAIL),
        modelId=image.model_id,
        type=TYPE_NAME_BY_KIND[image.kind],
        format=image.format.value,
        width=image.width,
        height=image.height,
        bytes=image.size_bytes,
        sha256=image.sha256,
        name=image.name,
        createdAt=image.created_at,
        lastUsedAt=image.last_used_at,
    )


def training_data_read(request: Request, container: Container, image: Image) -> TrainingDataRead:
    return TrainingDataRead(
        dataId=image.id,
        url=content_url(request, container, image.id, ImageVariant.ORIGINAL),
        format=image.format.value,
        width=image.width,
        height=image.height,
        bytes=image.size_bytes,
        sha256=image.sha256,
        name=image.name,
        createdAt=image.created_at,
    )


def training_data_content(
    request: Request, container: Container, image: Image, original: bytes
) -> TrainingDataContent:
    meta = training_data_read(request, container, image)
    encoded = base64.b64encode(original).decode()
    return TrainingDataContent(
        **meta.model_dump(), dataUrl=f"data:{image.format.mime};base64,{encoded}"
    )
