"""Reading upload bodies: raw bytes spooled to disk, multipart with caps on parts."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from fastapi import Request
from starlette.datastructures import UploadFile

from loraforge.domain.errors import BadRequest, PayloadTooLarge
from loraforge.http.json_body import parse_json
from loraforge.services.images import Upload

SPOOL_IN_MEMORY = 1024 * 1024  # larger bodies go to a temp file, keeping RSS flat
MAX_FIELD_BYTES = 64 * 1024


async def spool_body(
    request: Request, *, limit: int, name: str | None = None, what: str = "image"
) -> Upload:
    """The body in a spooled temporary file, at most ``limit`` bytes (``PayloadTooLarge``),
    not empty (``BadRequest``); ``what`` it holds names it in those errors."""
    spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY))  # noqa: SIM115
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The {what} is larger than {limit} bytes.")
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    if size == 0:
        spool.close()
        raise BadRequest(f"The request body is empty; send the {what} bytes.")
    spool.seek(0)
    return Upload(stream=spool, name=name)


@dataclass
class MultipartImage:
    upload: Upload
    data: dict[str, Any]


async def read_multipart(request: Request, *, what: str = "image") -> MultipartImage:
    """A ``file`` part (holding ``what``) and an optional ``data`` part holding JSON (as seeds
    000/001 send it)."""
    form = await request.form(max_files=2, max_fields=8, max_part_size=MAX_FIELD_BYTES)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        await form.close()
        raise BadRequest(f"The multipart body needs a 'file' part with the {what}.")
    raw = form.get("data")
    data: Any = {}
    if raw is not None:
        text = raw if isinstance(raw, str) else (await raw.read()).decode("utf-8", "replace")
        try:
            data = parse_json(text, message="The 'data' part must be a JSON object.")
        except BadRequest:
            await form.close()
            raise
    if not isinstance(data, dict):
        await form.close()
        raise BadRequest("The 'data' part must be a JSON object.")
    # Only the image travels on: every other part (``data`` sent as a file, stray parts) is
    # spooled to a temp file by the parser and must be closed here.
    for _, value in form.multi_items():
        if isinstance(value, UploadFile) and value is not file:
            await value.close()
    file.file.seek(0)
    return MultipartImage(upload=Upload(stream=file.file, name=file.filename), data=data)
