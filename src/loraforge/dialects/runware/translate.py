"""Runware frames in, core calls' results and errors out, in Runware's shapes.

Error codes: the vendor's own where the contract names one (``invalidApiKey``,
``missingApiKey``, ``conflictTaskUUID``); ``invalidTaskUUID`` and ``unsupportedTaskType`` for
malformed tasks; otherwise the core's machine code in camelCase (``unsupported_format`` →
``unsupportedFormat``, ``invalid_image`` → ``invalidImage``, ``fetch_failed`` →
``fetchFailed``, ``payload_too_large`` → ``payloadTooLarge``...).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from loraforge.api.errors import headers_for, status_for
from loraforge.dialects.runware.schemas import INVALID_API_KEY, ErrorItem
from loraforge.domain.entities import ImageFormat
from loraforge.domain.errors import BadRequest, DomainError, InvalidInput
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
    # For an HTTP answer that is this failure: Retry-After of a 503 or 429.
    headers: dict[str, str] = field(default_factory=dict)


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
    headers: dict[str, str] | None = None,
) -> Answer:
    return Answer(
        status=status,
        error=error_item(
            code, message, task_type=task_type, task_uuid=task_uuid, parameter=parameter
        ),
        headers=headers or {},
    )


def domain_failure(
    exc: DomainError, *, task_type: str | None, task_uuid: str | None, parameter: str | None
) -> Answer:
    return failed(
        status_for(exc),
        runware_code(exc.code),
        exc.message,
        task_type=task_type,
        task_uuid=task_uuid,
        parameter=exc.field or parameter,
        headers=headers_for(exc),
    )


def error_body(status: int, code: str, message: str, field: str | None) -> dict[str, Any]:
    """The sub-app's error shape for failures outside a task (bad key, unreadable body...)."""
    if code == "unauthenticated":
        return {"errors": [INVALID_API_KEY]}
    return {"errors": [error_item(runware_code(code), message, parameter=field)]}


def parse_tasks(raw: str | bytes) -> list[Any]:
    """A frame or request body: a JSON array of tasks (a single object is taken as one)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The message is not valid JSON; send an array of task objects.") from exc
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


def http_body(answers: list[Answer]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Every answer of a request in one body, and its status and headers. 200 when a task
    succeeded (failed ones are in ``errors``, scoped by ``taskUUID``), else the status and
    headers (``Retry-After``) of the first failure."""
    data = [a.data for a in answers if a.data is not None]
    errors = [a.error for a in answers if a.error is not None]
    body: dict[str, Any] = {"data": data}
    if errors:
        body["errors"] = errors
        if not data:
            del body["data"]
            first = next(a for a in answers if a.error is not None)
            return first.status, body, first.headers
    return 200, body, {}
