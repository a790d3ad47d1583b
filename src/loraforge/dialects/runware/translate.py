"""Runware frames in, core calls' results and errors out, in Runware's shapes: every field of
a Runware answer is written here (the router only decides which answer a task gets).

Error codes: the vendor's own where the contract names one (``invalidApiKey``,
``missingApiKey``, ``conflictTaskUUID``); ``invalidTaskUUID`` and ``unsupportedTaskType`` for
malformed tasks; otherwise the core's machine code in camelCase (``unsupported_format`` →
``unsupportedFormat``, ``invalid_image`` → ``invalidImage``, ``fetch_failed`` →
``fetchFailed``, ``payload_too_large`` → ``payloadTooLarge``...).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from loraforge.dialects.runware.schemas import (
    AUTHENTICATION,
    IMAGE_UPLOAD,
    INVALID_API_KEY,
    PING,
    ErrorItem,
)
from loraforge.domain.entities import Image, ImageFormat, ImageVariant
from loraforge.domain.errors import BadRequest, DomainError, InvalidInput
from loraforge.http.errors import status_for
from loraforge.http.json_body import parse_json
from loraforge.http.links import ImageLinks
from loraforge.services.images import TASK_CONFLICT

ORIGIN = "runware"
RECEIPT_SCOPE = f"{ORIGIN}:imageUpload"  # the retention sweep forgets it with ORIGIN images
# Seed 002: "Valid extensions are: jpeg, jpg, png, webp, bmp and gif" (decided from the bytes).
FORMATS = frozenset(
    {ImageFormat.PNG, ImageFormat.JPEG, ImageFormat.WEBP, ImageFormat.BMP, ImageFormat.GIF}
)
MAX_TASKS = 100  # tasks in one frame or request

_SPECIAL_CODES = {"unauthenticated": "invalidApiKey", TASK_CONFLICT: "conflictTaskUUID"}


@dataclass(frozen=True)
class Answer:
    """One task's outcome: a ``data`` item or an ``errors`` item, and its HTTP status."""

    status: int
    data: dict[str, Any] | None = None
    error: ErrorItem | None = None
    retry_after: int | None = None  # seconds, for 429/503: also ``retryAfter`` in the error


def authenticated(session_uuid: str) -> Answer:
    return Answer(
        status=200, data={"taskType": AUTHENTICATION, "connectionSessionUUID": session_uuid}
    )


def invalid_api_key() -> Answer:
    return Answer(status=401, error=INVALID_API_KEY.copy())


def pong() -> Answer:
    return Answer(status=200, data={"taskType": PING, "pong": True})


def uploaded(image: Image, task_uuid: str, links: ImageLinks) -> Answer:
    """``imageURL`` links the display variant (at most 2048 px on its long side)."""
    return Answer(
        status=200,
        data={
            "taskType": IMAGE_UPLOAD,
            "taskUUID": task_uuid,
            "imageUUID": image.id,
            "imageURL": links.content(image.id, ImageVariant.DISPLAY),
        },
    )


def runware_code(core_code: str) -> str:
    special = _SPECIAL_CODES.get(core_code)
    if special:
        return special
    head, *rest = core_code.split("_")
    return head + "".join(part.capitalize() for part in rest)


def error_item(
    code: str,
    message: str,
    *,
    task_type: str | None = None,
    task_uuid: str | None = None,
    parameter: str | None = None,
) -> ErrorItem:
    item = ErrorItem(code=code, message=message)
    if parameter:
        item["parameter"] = parameter
        item["type"] = "string"
    if task_type is not None:
        item["taskType"] = task_type
    if task_uuid is not None:
        item["taskUUID"] = task_uuid
    return item


def failed(
    status: int,
    code: str,
    message: str,
    *,
    task_type: str | None,
    task_uuid: str | None,
    parameter: str | None = None,
) -> Answer:
    return Answer(
        status=status,
        error=error_item(
            code, message, task_type=task_type, task_uuid=task_uuid, parameter=parameter
        ),
    )


def domain_failure(
    exc: DomainError, *, task_type: str | None, task_uuid: str | None, parameter: str | None
) -> Answer:
    answer = failed(
        status_for(exc),
        runware_code(exc.code),
        exc.message,
        task_type=task_type,
        task_uuid=task_uuid,
        parameter=exc.field or parameter,
    )
    retry_after = getattr(exc, "retry_after", None)  # RateLimited, Unavailable
    if isinstance(retry_after, int) and answer.error is not None:
        # A WebSocket frame has no headers: the error item says when to retry.
        answer.error["retryAfter"] = retry_after
        return Answer(status=answer.status, error=answer.error, retry_after=retry_after)
    return answer


def error_body(status: int, code: str, message: str, field: str | None) -> dict[str, Any]:
    """The sub-app's error shape for failures outside a task (bad key, unreadable body...)."""
    if code == "unauthenticated":
        return {"errors": [INVALID_API_KEY]}
    return {"errors": [error_item(runware_code(code), message, parameter=field)]}


def parse_tasks(raw: str | bytes) -> list[Any]:
    """A frame or request body: a JSON array of tasks (a single object is taken as one)."""
    value = parse_json(raw, message="The message is not valid JSON; send an array of task objects.")
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise BadRequest("Send a JSON array of task objects.")
    if len(value) > MAX_TASKS:
        raise InvalidInput(f"At most {MAX_TASKS} tasks per message.")
    return value


def text_field(task: dict[str, Any], name: str) -> str | None:
    value = task.get(name)
    return value if isinstance(value, str) else None


def canonical_uuid(value: str) -> str | None:
    """The UUID in canonical form, or None when ``value`` is not one."""
    if len(value) > 45:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def frame(answer: Answer) -> dict[str, Any]:
    """One WebSocket frame for one answer."""
    if answer.error is not None:
        return {"errors": [answer.error]}
    return {"data": [answer.data]}


def http_body(answers: list[Answer]) -> tuple[int, dict[str, Any]]:
    """Every answer of a request in one body. 200 when a task succeeded (failed ones are in
    ``errors``, scoped by ``taskUUID``), else the status of the first failure."""
    data = [a.data for a in answers if a.data is not None]
    errors = [a.error for a in answers if a.error is not None]
    body: dict[str, Any] = {"data": data}
    if errors:
        body["errors"] = errors
        if not data:
            del body["data"]
            return next(a.status for a in answers if a.error is not None), body
    return 200, body


def http_headers(status: int, answers: list[Answer]) -> dict[str, str]:
    """``Retry-After`` on a 429/503 answer: the longest wait any refused task was given."""
    waits = [a.retry_after for a in answers if a.retry_after is not None]
    return {"Retry-After": str(max(waits))} if status in (429, 503) and waits else {}
