"""PhotoGPT images and models (seeds 000/001), served under ``/compat/photogpt``.

Requests send ``Authorization: Bearer <key>`` (and ``API-Version: 1``, accepted and ignored).
Answers are ``{"result": ..., "status": "OK"}``, listings ``{"page", "pageSize", "result",
"status"}``; every error ``{"err", "message", "result": null, "status": "NOK"}`` with the status
the native API would use for the same domain error.
"""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, FastAPI, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from loraforge.dialects.photogpt import translate
from loraforge.dialects.photogpt.schemas import (
    Deleted,
    ModelBody,
    Ok,
    OkPage,
    PhotoImage,
    PhotoModel,
    UploadData,
)
from loraforge.domain.errors import InvalidInput
from loraforge.http.deps import ContainerDep, LinksDep, PrincipalDep
from loraforge.http.dialect import sub_app
from loraforge.http.errors import install_error_handlers
from loraforge.http.image_types import KIND_BY_TYPE_NAME, ImageKindsQuery
from loraforge.http.paging import PageNum, PageSize
from loraforge.http.uploads import read_multipart
from loraforge.services.paging import page_request

router = APIRouter()


def create_app(parent: FastAPI) -> FastAPI:
    app = sub_app(parent, title="loraforge: PhotoGPT-compatible images")
    install_error_handlers(app, translate.error_body)
    app.include_router(router)
    return app


# --- images ------------------------------------------------------------------------------


@router.post("/images/upload")
async def upload_image(
    request: Request, who: PrincipalDep, c: ContainerDep, links: LinksDep
) -> Ok[PhotoImage]:
    """Multipart: ``file`` (the image) and ``data`` (JSON ``{"modelID", "type", "caption"?}``,
    as a plain field or as a part with its own content type)."""
    form = await read_multipart(request)
    with form.upload.stream:
        data = _upload_data(form.data)
        image = await run_in_threadpool(
            c.images.ingest,
            who,
            dataclasses.replace(form.upload, caption=data.caption),
            kind=KIND_BY_TYPE_NAME[data.type],
            model_id=data.modelID,
            allowed=translate.FORMATS,
            origin=translate.ORIGIN,
        )
    return translate.one_image(image, links)


@router.get("/models/{modelID}/images")
def list_model_images(
    modelID: str,
    who: PrincipalDep,
    c: ContainerDep,
    links: LinksDep,
    kinds: ImageKindsQuery,
    page_num: PageNum = 1,
    page_size: PageSize = 20,
) -> OkPage[PhotoImage]:
    page = page_request(page_num, page_size, max_page_size=c.limits.max_page_size)
    found = c.images.list_for_model(who, modelID, kinds=kinds, page=page)
    return translate.image_page(found, links)


@router.get("/images/{imageId}")
def get_image(imageId: str, who: PrincipalDep, c: ContainerDep, links: LinksDep) -> Ok[PhotoImage]:
    image = c.images.get(who, imageId)
    return translate.one_image(image, links)


@router.delete("/images/{imageId}")
def delete_image(imageId: str, who: PrincipalDep, c: ContainerDep) -> Ok[Deleted]:
    c.images.delete(who, imageId)
    return translate.deleted(imageId)


# --- models ------------------------------------------------------------------------------


@router.post("/models")
def save_model(body: ModelBody, who: PrincipalDep, c: ContainerDep) -> Ok[PhotoModel]:
    """Create a model from ``name`` and the person's traits, or update model ``id``."""
    attributes = {translate.NAMESPACE: body.attributes()}
    if body.id is not None:
        model_id = body.id
        model = c.models.update(
            who,
            model_id,
            display_name=body.name,
            custom_model_type=body.modelType,
            attributes=attributes,
        )
    else:
        if body.name is None:
            raise InvalidInput("name: a new model needs a name.", field="name")
        name = body.name
        model = c.models.create(
            who, display_name=name, custom_model_type=body.modelType, attributes=attributes
        )
    statuses = c.models.statuses(who, [model.id])
    return translate.one_model(model, statuses)


@router.get("/models")
def list_models(
    who: PrincipalDep, c: ContainerDep, page_num: PageNum = 1, page_size: PageSize = 20
) -> OkPage[PhotoModel]:
    page = page_request(page_num, page_size, max_page_size=c.limits.max_page_size)
    found = c.models.list(who, page)
    statuses = c.models.statuses(who, [m.id for m in found.items])
    return translate.model_page(found, statuses)


@router.get("/models/{modelID}")
def get_model(modelID: str, who: PrincipalDep, c: ContainerDep) -> Ok[PhotoModel]:
    model = c.models.get(who, modelID)
    statuses = c.models.statuses(who, [model.id])
    return translate.one_model(model, statuses)


def _upload_data(data: object) -> UploadData:
    try:
        return UploadData.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        message = f"data.{field}: {first['msg']}" if field else f"data: {first['msg']}"
        raise InvalidInput(message, field=f"data.{field}" if field else "data") from exc
