"""Runware imageUpload (seed 002) at ``/compat/runware/v1``: WebSocket and HTTP POST.

The sub-app is mounted at ``/compat/runware`` and serves ``/v1`` itself, so the exact URL
``ws://host/compat/runware/v1`` that SDK users configure matches (a mount only matches paths
below its prefix).

- WebSocket: task arrays in, one ``{"data": [...]}`` or ``{"errors": [...]}`` frame per task
  out. ``authentication`` (apiKey → ``connectionSessionUUID``) comes first; ``ping`` is answered
  while uploads run (a few at once per connection; past that, reading waits for a free slot).
  A connection that is not authenticated ``ws_auth_timeout_s`` after it opened is closed with
  a close frame (1008), so unauthenticated sockets cannot be held open.
- HTTP ``POST``: the same task array, authenticated by ``Authorization: Bearer <key>`` or by an
  ``authentication`` task in the array; every answer in one body.

A repeated ``taskUUID`` does not create a second image: the same upload again answers with the
first image; a different upload under that ``taskUUID`` gets ``conflictTaskUUID``. An ``image``
that is the ``imageUUID`` of an earlier upload is a use of that image (retention counts from the
last use).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from loraforge.bootstrap import Container
from loraforge.dialects.runware import translate
from loraforge.dialects.runware.schemas import AUTHENTICATION, IMAGE_UPLOAD, PING
from loraforge.dialects.runware.translate import Answer
from loraforge.domain.entities import Image, ImageKind, Principal
from loraforge.domain.errors import DomainError, RateLimited, Unauthenticated
from loraforge.http.deps import authenticate, get_container, image_links, presented_key
from loraforge.http.dialect import sub_app
from loraforge.http.errors import install_error_handlers
from loraforge.http.url_uploads import run_url_upload
from loraforge.services.fetch_slots import FetchPermit
from loraforge.services.images import TaskKey, Upload
from loraforge.services.inline_images import decode_inline, is_url

log = logging.getLogger("loraforge.dialects.runware")

router = APIRouter()

UPLOADS_PER_CONNECTION = 4  # concurrent uploads of one WebSocket; decoding is bounded globally
AUTH_TIMEOUT_CLOSE = 1008  # policy violation: no authentication within ws_auth_timeout_s


def create_app(parent: FastAPI) -> FastAPI:
    app = sub_app(parent, title="loraforge: Runware-compatible imageUpload")
    install_error_handlers(app, translate.error_body)
    app.include_router(router)
    return app


class TaskSession:
    """Runs tasks for one connection (a WebSocket) or one HTTP request.

    ``request`` is an HTTP view of the connection: it authenticates (counting failures per
    client, as the native API does) and is the base of the signed links.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        self.container: Container = get_container(request)
        self.links = image_links(request)
        self.who: Principal | None = None

    async def run(self, task: Any) -> Answer:
        if not isinstance(task, dict):
            return translate.failed(
                400,
                "invalidTask",
                "Each task must be a JSON object.",
                task_type=None,
                task_uuid=None,
            )
        task_type = translate.text_field(task, "taskType")
        task_uuid = translate.text_field(task, "taskUUID")
        try:
            if task_type == AUTHENTICATION:
                return await self._authenticate(task)
            if task_type == PING:
                return translate.pong()
            if task_type == IMAGE_UPLOAD:
                return await self._upload(task, task_uuid)
        except DomainError as exc:
            return translate.domain_failure(
                exc, task_type=task_type, task_uuid=task_uuid, parameter=None
            )
        except Exception:
            log.exception("task %s failed", task_type)
            return translate.failed(
                500,
                "internalError",
                "Internal server error.",
                task_type=task_type,
                task_uuid=task_uuid,
            )
        return translate.failed(
            400,
            "unsupportedTaskType",
            f"The task type {task_type!r} is not supported by this server; "
            f"supported: {AUTHENTICATION}, {PING}, {IMAGE_UPLOAD}.",
            task_type=task_type,
            task_uuid=task_uuid,
            parameter="taskType",
        )

    async def _authenticate(self, task: dict[str, Any]) -> Answer:
        self.who = None  # a refused key ends an earlier authentication too
        try:
            self.who = await authenticate(self.request, translate.text_field(task, "apiKey"))
        except Unauthenticated:
            return translate.invalid_api_key()
        except RateLimited as exc:
            return translate.domain_failure(
                exc, task_type=AUTHENTICATION, task_uuid=None, parameter="apiKey"
            )
        session = translate.text_field(task, "connectionSessionUUID")
        session = translate.canonical_uuid(session) if session else None
        return translate.authenticated(session or str(uuid.uuid4()))

    async def _upload(self, task: dict[str, Any], task_uuid: str | None) -> Answer:
        if self.who is None:
            return translate.failed(
                401,
                "missingApiKey",
                "Authenticate first: send an authentication task with your apiKey "
                "(or, over HTTP, an Authorization: Bearer header).",
                task_type=IMAGE_UPLOAD,
                task_uuid=task_uuid,
                parameter="apiKey",
            )
        task_id = translate.canonical_uuid(task_uuid) if task_uuid else None
        if task_uuid is None or task_id is None:
            return translate.failed(
                400,
                "invalidTaskUUID",
                "taskUUID must be a UUID v4 string, unique for each task.",
                task_type=IMAGE_UPLOAD,
                task_uuid=task_uuid,
                parameter="taskUUID",
            )
        value = translate.text_field(task, "image")
        if not value or not value.strip():
            return translate.failed(
                400,
                "missingImage",
                "image is required: a data URI, a base64 string or a public URL.",
                task_type=IMAGE_UPLOAD,
                task_uuid=task_uuid,
                parameter="image",
            )
        who, value = self.who, value.strip()
        try:
            if is_url(value):  # admitted now or refused now (429/503), then off the API's pool
                image = await run_url_upload(
                    self.container, who, lambda permit: self._ingest(who, task_id, value, permit)
                )
            else:
                image = await run_in_threadpool(self._ingest, who, task_id, value, None)
        except DomainError as exc:
            return translate.domain_failure(
                exc, task_type=IMAGE_UPLOAD, task_uuid=task_uuid, parameter="image"
            )
        return translate.uploaded(image, task_uuid, self.links)

    def _ingest(
        self, who: Principal, task_id: str, value: str, permit: FetchPermit | None
    ) -> Image:
        images = self.container.images
        existing = translate.canonical_uuid(value)
        if existing is not None:  # an earlier upload's imageUUID: a use of that image
            return images.get(who, existing)
        source: Upload | str
        if is_url(value):
            source = value
            fingerprint = hashlib.sha256(b"url\n" + value.encode()).hexdigest()
        else:
            data = decode_inline(value, max_bytes=self.container.limits.max_request_bytes)
            source = Upload(stream=io.BytesIO(data))
            fingerprint = hashlib.sha256(data).hexdigest()
        return images.ingest_once(
            who,
            TaskKey(scope=translate.RECEIPT_SCOPE, task_id=task_id, fingerprint=fingerprint),
            source,
            kind=ImageKind.REFERENCE,
            allowed=translate.FORMATS,
            origin=translate.ORIGIN,
            permit=permit,
        )


# --- HTTP --------------------------------------------------------------------------------


TASKS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "maxItems": translate.MAX_TASKS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "taskType": {"enum": [AUTHENTICATION, PING, IMAGE_UPLOAD]},
                            "taskUUID": {"type": "string", "format": "uuid"},
                            "apiKey": {"type": "string"},
                            "image": {"type": "string"},
                        },
                        "required": ["taskType"],
                    },
                }
            }
        },
    }
}


@router.post("/v1", openapi_extra=TASKS_BODY)
@router.post("/v1/", include_in_schema=False)
async def run_tasks(request: Request) -> JSONResponse:
    """A JSON array of tasks; ``Authorization: Bearer <key>`` or an authentication task."""
    tasks = translate.parse_tasks(await request.body())
    session = TaskSession(request)
    key = presented_key(request)
    if key is not None:
        session.who = await authenticate(request, key)  # a bad key: 401 invalidApiKey
    answers = [await session.run(task) for task in tasks]
    status, body = translate.http_body(answers)
    return JSONResponse(body, status_code=status, headers=translate.http_headers(status, answers))


# --- WebSocket ---------------------------------------------------------------------------


@router.websocket("/v1")
@router.websocket("/v1/")
async def run_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    session = TaskSession(_http_view(websocket))
    limit = session.container.limits.max_request_bytes
    sending = asyncio.Lock()
    slots = asyncio.Semaphore(UPLOADS_PER_CONNECTION)
    running: set[asyncio.Task[None]] = set()

    async def send(answer: Answer) -> None:
        async with sending:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await websocket.send_json(translate.frame(answer))

    async def run_then_free(task: Any) -> None:
        try:
            await send(await session.run(task))
        finally:
            slots.release()

    auth_by = asyncio.get_running_loop().time() + session.container.settings.ws_auth_timeout_s
    try:
        while True:
            message = await _receive_until_authenticated(websocket, session, auth_by)
            if message is None or message["type"] == "websocket.disconnect":
                break
            raw: str | bytes = message.get("text") or message.get("bytes") or b""
            if len(raw) > limit:
                await send(
                    translate.failed(
                        413,
                        "payloadTooLarge",
                        f"The message is larger than {limit} bytes.",
                        task_type=None,
                        task_uuid=None,
                    )
                )
                continue
            try:
                tasks = translate.parse_tasks(raw)
            except DomainError as exc:
                await send(
                    translate.domain_failure(exc, task_type=None, task_uuid=None, parameter=None)
                )
                continue
            for task in tasks:
                if isinstance(task, dict) and task.get("taskType") in (AUTHENTICATION, PING):
                    await send(await session.run(task))  # in order: later tasks need the auth
                    continue
                # Backpressure: with every slot busy, stop reading until one frees up, so a
                # client cannot pile up work (and the images it carries) in memory.
                await slots.acquire()
                job = asyncio.create_task(run_then_free(task))
                running.add(job)
                job.add_done_callback(running.discard)
    except WebSocketDisconnect:
        pass
    finally:
        for job in running:
            job.cancel()


async def _receive_until_authenticated(
    websocket: WebSocket, session: TaskSession, auth_by: float
) -> Message | None:
    """The next message; while the connection is not authenticated, only until ``auth_by``
    (loop time): past it the connection is closed with a close frame (1008) and None returned,
    so unauthenticated sockets cannot be held open."""
    while True:
        if session.who is not None:
            return await websocket.receive()
        remaining = auth_by - asyncio.get_running_loop().time()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(websocket.receive(), remaining)
            continue
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.close(code=AUTH_TIMEOUT_CLOSE, reason="Not authenticated in time.")
        return None


def _http_view(websocket: WebSocket) -> Request:
    """The connection seen as an HTTP request: same client, headers and app (container);
    ``http(s)`` scheme, so links built from it are fetchable."""
    scheme = {"ws": "http", "wss": "https"}.get(websocket.url.scheme, websocket.url.scheme)
    return Request({**websocket.scope, "type": "http", "scheme": scheme, "method": "GET"})
