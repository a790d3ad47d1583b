"""/v1/images: every kind of image, three ways in; and model image listings."""

from __future__ import annotations

import dataclasses
import io
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from loraforge.api.errors import documented
from loraforge.api.presenters import image_page, image_read, image_uploaded
from loraforge.api.schemas.images import (
    CaptionUpdate,
    ImageJsonUpload,
    ImagePage,
    ImageRead,
    ImageUploadData,
    ImageUploaded,
)
from loraforge.bootstrap import Container
from loraforge.domain.captions import MAX_CAPTION
from loraforge.domain.entities import ALL_FORMATS, Image, ImageVariant, Principal
from loraforge.domain.errors import InvalidInput
from loraforge.http.deps import ContainerDep, LinksDep, PrincipalDep, get_principal
from loraforge.http.image_types import KIND_BY_TYPE_NAME, ImageKindsQuery, ImageTypeName
from loraforge.http.json_body import parse_json
from loraforge.http.paging import PageNum, PageSize
from loraforge.http.streaming import file_chunks
from loraforge.http.uploads import read_multipart, spool_body
from loraforge.http.url_uploads import run_url_upload
from loraforge.services.images import Upload
from loraforge.services.inline_images import decode_inline, is_url
from loraforge.services.paging import page_request

router = APIRouter(tags=["images"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "multipart/form-data with a `file` part and a `data` part holding JSON "
            '`{"modelID" or "modelId", "type", "caption"?}`; or JSON `{"image", "modelId", '
            '"type", "caption"?}` where image is a data URI, bare base64 or an http(s) URL; or '
            "the raw image bytes with `modelId`, `type` and `caption` as query parameters. "
            "Only training images (`modelInput`) take a caption."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "data"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "data": {
                            "type": "string",
                            "description": "JSON {modelID, type, caption?}",
                        },
                    },
                }
            },
            "application/json": {"schema": ImageJsonUpload.model_json_schema()},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/v1/images",
    responses=documented(400, 404, 409, 413, 415, 422, 507),
    status_code=201,
    response_model=ImageUploaded,
    openapi_extra=UPLOAD_BODY,
)
async def upload_image(
    request: Request,
    who: PrincipalDep,
    c: ContainerDep,
    links: LinksDep,
    model_id: Annotated[str | None, Query(alias="modelId")] = None,
    type_: Annotated[ImageTypeName | None, Query(alias="type")] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    caption: Annotated[str | None, Query(max_length=MAX_CAPTION)] = None,
) -> ImageUploaded:
    """A `modelInput` image answers the dataset check's issues found so far under
    `warnings` (never a refusal); the rest, once it is measured, in the dataset report."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await read_multipart(request)
        try:
            data = _parse(ImageUploadData, form.data)
        except InvalidInput:
            form.upload.stream.close()  # _ingest owns the stream only once the data is valid
            raise
        upload = dataclasses.replace(form.upload, caption=data.caption)
        image = await _ingest(c, who, upload, data.modelId, data.type)
    elif content_type == "application/json":
        body = _parse(ImageJsonUpload, await _json(request))
        image = await _ingest_json(c, who, body)
    else:
        if type_ is None:
            raise InvalidInput("The query parameter 'type' is required.", field="type")
        upload = await spool_body(request, limit=c.limits.max_request_bytes, name=name)
        upload = dataclasses.replace(upload, caption=caption)
        image = await _ingest(c, who, upload, model_id, type_)
    warnings = await run_in_threadpool(c.dataset.warnings, who, image)
    return image_uploaded(image, links, warnings)


@router.get("/v1/images/{imageId}", responses=documented(404), response_model=ImageRead)
def get_image(imageId: str, who: PrincipalDep, c: ContainerDep, links: LinksDep) -> ImageRead:
    return image_read(c.images.get(who, imageId), links)


@router.patch(
    "/v1/images/{imageId}", responses=documented(400, 404, 413, 422), response_model=ImageRead
)
def update_image(
    imageId: str, body: CaptionUpdate, who: PrincipalDep, c: ContainerDep, links: LinksDep
) -> ImageRead:
    """Set a training image's caption (`captionSource` becomes `user`; an empty caption too).
    Other images have no caption: 422 naming `caption`."""
    return image_read(c.training_images.set_caption(who, imageId, body.caption), links)


@router.get(
    "/v1/images/{imageId}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/*": {}}}, **documented(403, 404, 422)},
)
async def get_image_content(
    imageId: str,
    request: Request,
    c: ContainerDep,
    variant: ImageVariant = ImageVariant.ORIGINAL,
    expires: int | None = None,
    sig: str | None = None,
) -> StreamingResponse:
    """Works with the API key, or with no headers at all on a signed link (``url``)."""
    if sig is not None or expires is not None:
        c.links.verify(imageId, variant, expires=expires or 0, sig=sig or "")
        image = await run_in_threadpool(c.images.get_for_link, imageId)
    else:
        who = await get_principal(request)
        image = await run_in_threadpool(c.images.get, who, imageId)
    content = await run_in_threadpool(c.images.open, image, variant)
    return StreamingResponse(
        file_chunks(content.stream),
        media_type=content.mime,
        headers={
            "Content-Length": str(content.size),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.delete(
    "/v1/images/{imageId}", responses=documented(404), status_code=204, response_class=Response
)
def delete_image(imageId: str, who: PrincipalDep, c: ContainerDep) -> Response:
    c.images.delete(who, imageId)
    return Response(status_code=204)


@router.get("/v1/models/{modelId}/images", responses=documented(404, 422), response_model=ImagePage)
def list_model_images(
    modelId: str,
    who: PrincipalDep,
    c: ContainerDep,
    links: LinksDep,
    kinds: ImageKindsQuery,
    page_num: PageNum = 1,
    page_size: PageSize = 20,
) -> ImagePage:
    page = page_request(page_num, page_size, max_page_size=c.limits.max_page_size)
    result = c.images.list_for_model(who, modelId, kinds=kinds, page=page)
    return image_page(result, links)


async def _ingest(
    c: Container, who: Principal, upload: Upload, model_id: str | None, type_name: str
) -> Image:
    kind = KIND_BY_TYPE_NAME[type_name]
    with upload.stream:
        return await run_in_threadpool(
            c.images.ingest, who, upload, kind=kind, model_id=model_id, allowed=ALL_FORMATS
        )


async def _ingest_json(c: Container, who: Principal, body: ImageJsonUpload) -> Image:
    kind = KIND_BY_TYPE_NAME[body.type]
    if is_url(body.image):
        return await run_url_upload(
            c,
            who,
            lambda permit: c.images.ingest_url(
                who,
                body.image,
                kind=kind,
                model_id=body.modelId,
                allowed=ALL_FORMATS,
                permit=permit,
                caption=body.caption,
            ),
        )
    data = decode_inline(body.image, max_bytes=c.limits.max_request_bytes)
    upload = Upload(stream=io.BytesIO(data), name=body.name, caption=body.caption)
    return await _ingest(c, who, upload, body.modelId, body.type)


async def _json(request: Request) -> object:
    return parse_json(await request.body(), message="The body is not valid JSON.")


M = TypeVar("M", ImageJsonUpload, ImageUploadData)


def _parse(schema: type[M], data: object) -> M:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidInput(
            f"{field}: {first['msg']}" if field else first["msg"], field=field
        ) from exc
