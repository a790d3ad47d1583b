"""/v1/models/{modelId}/data/archive: a model's training set as one ZIP, in and out.

An upload answers one result per file. Its status says whether anything was stored: 201 when
at least one file became training data, 200 when the archive was read but none did (every
file is rejected or skipped, each saying why). The answer is one body either way, as bulk
endpoints such as Runware's task arrays and Elasticsearch's ``_bulk`` answer per-item
outcomes; an archive refused whole (hostile, too large, not a ZIP) is an error in the one
error shape, and stores nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from loraforge.api.errors import documented
from loraforge.api.presenters import archive_uploaded
from loraforge.api.routers.model_data import DATA_FORMATS
from loraforge.api.schemas.archives import ArchiveUploaded
from loraforge.domain.errors import BadRequest
from loraforge.http.deps import ContainerDep, PrincipalDep
from loraforge.http.streaming import file_chunks
from loraforge.http.uploads import read_multipart, spool_body
from loraforge.services.images import Upload
from loraforge.services.training_archives import EntryStatus

router = APIRouter(prefix="/v1/models/{modelId}/data/archive", tags=["training data"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
ZIP_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "A ZIP of JPEG, PNG or WebP images, each with an optional caption in a `.txt` file "
            "of the same name (`a.jpg` + `a.txt`), as the raw body or as the `file` part of a "
            "multipart form. Limits: `LORAFORGE_MAX_ARCHIVE_BYTES` (200 MiB) for the body, "
            "`LORAFORGE_MAX_ARCHIVE_ENTRIES` (1000) files, `LORAFORGE_MAX_DATA_BYTES` (10 MiB) "
            "per file and `LORAFORGE_MAX_ARCHIVE_INFLATED_BYTES` (400 MiB) for all of them "
            "inflated, at most 100 times their compressed size each."
        ),
        "content": {
            "application/zip": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=ArchiveUploaded,
    response_model_exclude_unset=True,
    responses={
        200: {"model": ArchiveUploaded, "description": "Read; no file became training data."},
        201: {"description": "At least one file became training data."},
        **documented(400, 404, 413, 507),
    },
    openapi_extra=ZIP_BODY,
)
async def upload_archive(
    modelId: str, request: Request, response: Response, who: PrincipalDep, c: ContainerDep
) -> ArchiveUploaded:
    """Each image becomes a training data item as a single `POST .../data` of it would
    (`caption` from its `.txt`, else a captioning model's job); each file is answered in
    `results`: `created` with its `dataId` and `warnings`, `rejected` with the `error` a
    single upload gets (`limit_reached` for images beyond the model's places), or `skipped`.
    A hostile archive (a ZIP bomb, too many files, nested archives, names that are paths,
    encryption, a truncated archive) is refused whole with a 400 or 413 `archive_*` code,
    storing nothing."""
    await run_in_threadpool(c.models.get, who, modelId)  # a 404 before reading the body
    upload = await _archive_body(request, limit=c.settings.max_archive_bytes)
    with upload.stream:
        report = await run_in_threadpool(
            c.training_archives.add, who, modelId, upload.stream, allowed=DATA_FORMATS
        )
    if not report.count(EntryStatus.CREATED):
        response.status_code = 200
    return archive_uploaded(report)


@router.get(
    "",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/zip": _BINARY},
            "description": "The training set: each image's original bytes, and `<name>.txt` "
            "with its caption where it has one.",
        },
        **documented(404),
    },
)
def download_archive(modelId: str, who: PrincipalDep, c: ContainerDep) -> StreamingResponse:
    """The model's training data as a ZIP that `POST` takes back: the original bytes under
    names made from the uploads' names (unique; letters, digits, `_`, `-` and spaces), and a
    `.txt` of the same name for each image with a caption (`captionSource` `user` or
    `auto`)."""
    archive = c.training_archives.download(who, modelId)
    return StreamingResponse(
        file_chunks(archive.stream),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{modelId}-data.zip"',
            "Content-Length": str(archive.size),
        },
    )


async def _archive_body(request: Request, *, limit: int) -> Upload:
    """The raw body, or the ``file`` part of a multipart form (nothing else beside it)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        return await spool_body(request, limit=limit, what="archive")
    form = await read_multipart(request, what="archive")
    if form.data:
        form.upload.stream.close()
        raise BadRequest("An archive upload takes a 'file' part only, no 'data' part.")
    return form.upload
