"""/v1/models/{modelId}/data: seed 003 training data, raw image bodies (webp, png, jpeg)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from loraforge.api.errors import documented
from loraforge.api.presenters import (
    data_created,
    training_data_content,
    training_data_list,
    training_data_read,
)
from loraforge.api.schemas.images import (
    CaptionUpdate,
    DataCreated,
    TrainingDataContent,
    TrainingDataRead,
)
from loraforge.bootstrap import Container
from loraforge.domain.captions import MAX_CAPTION
from loraforge.domain.entities import ImageFormat, ImageKind
from loraforge.http.deps import ContainerDep, LinksDep, PrincipalDep
from loraforge.http.uploads import spool_body
from loraforge.services.paging import PageRequest

router = APIRouter(prefix="/v1/models/{modelId}/data", tags=["training data"])

DATA_FORMATS = frozenset({ImageFormat.WEBP, ImageFormat.PNG, ImageFormat.JPEG})
TRAINING = ImageKind.TRAINING
RAW_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "Raw binary image data (webp, png, jpeg, jpg; at most 10 MB).",
        "content": {
            m: {"schema": {"type": "string", "format": "binary"}}
            for m in ("image/webp", "image/png", "image/jpeg", "application/octet-stream")
        },
    }
}


@router.post(
    "",
    responses=documented(400, 404, 409, 413, 415, 422, 507),
    status_code=201,
    response_model=DataCreated,
    openapi_extra=RAW_IMAGE_BODY,
)
async def add_data(
    modelId: str,
    request: Request,
    who: PrincipalDep,
    c: ContainerDep,
    caption: Annotated[str | None, Query(max_length=MAX_CAPTION)] = None,
) -> DataCreated:
    """`caption`: what the picture shows (its `captionSource` is then `user`); without one, a
    configured captioning model writes one in a background job.

    `warnings`: the dataset check's issues found so far for the new image (never a
    refusal); the rest, once it is measured, in `GET /v1/models/{modelId}/dataset-report`."""
    upload = await spool_body(request, limit=c.limits.max_data_bytes)
    upload = dataclasses.replace(upload, caption=caption)
    with upload.stream:
        image = await run_in_threadpool(
            c.images.ingest, who, upload, kind=TRAINING, model_id=modelId, allowed=DATA_FORMATS
        )
    return data_created(image, await run_in_threadpool(c.dataset.warnings, who, image))


@router.get("", responses=documented(404), response_model=list[TrainingDataRead])
def list_data(
    modelId: str, who: PrincipalDep, c: ContainerDep, links: LinksDep
) -> list[TrainingDataRead]:
    page = c.images.list_for_model(who, modelId, kinds=[TRAINING], page=_all(c))
    return training_data_list(page.items, links)


@router.get("/{dataId}", responses=documented(404), response_model=TrainingDataContent)
def get_data(
    modelId: str, dataId: str, who: PrincipalDep, c: ContainerDep, links: LinksDep
) -> TrainingDataContent:
    image = c.images.get(who, dataId, model_id=modelId, kind=TRAINING)
    return training_data_content(image, c.images.read_original(image), links)


@router.put(
    "/{dataId}",
    responses=documented(400, 404, 413, 415, 422, 507),
    response_model=TrainingDataRead,
    openapi_extra=RAW_IMAGE_BODY,
)
async def replace_data(
    modelId: str, dataId: str, request: Request, who: PrincipalDep, c: ContainerDep, links: LinksDep
) -> TrainingDataRead:
    upload = await spool_body(request, limit=c.limits.max_data_bytes)
    with upload.stream:
        image = await run_in_threadpool(
            c.images.replace,
            who,
            dataId,
            upload,
            allowed=DATA_FORMATS,
            model_id=modelId,
            kind=TRAINING,
        )
    return training_data_read(image, links)


@router.patch(
    "/{dataId}", responses=documented(400, 404, 413, 422), response_model=TrainingDataRead
)
def update_data(
    modelId: str,
    dataId: str,
    body: CaptionUpdate,
    who: PrincipalDep,
    c: ContainerDep,
    links: LinksDep,
) -> TrainingDataRead:
    """Set the caption (`captionSource` becomes `user`; an empty caption too)."""
    image = c.training_images.set_caption(
        who, dataId, body.caption, model_id=modelId, kind=TRAINING
    )
    return training_data_read(image, links)


@router.delete("/{dataId}", responses=documented(404), status_code=204, response_class=Response)
def delete_data(modelId: str, dataId: str, who: PrincipalDep, c: ContainerDep) -> Response:
    c.images.delete(who, dataId, model_id=modelId, kind=TRAINING)
    return Response(status_code=204)


def _all(c: Container) -> PageRequest:
    # Training images are capped per model, so one page always holds them all.
    return PageRequest(page_num=1, page_size=max(c.limits.max_images_per_type, 1))
