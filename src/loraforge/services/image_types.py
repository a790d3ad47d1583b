"""Small value types of the image service: task keys for idempotent uploads, content streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class TaskKey:
    """A client-chosen task id (Runware ``taskUUID``): one image per id, per account and scope.

    ``fingerprint`` identifies what the task asked for; the same id with another fingerprint is
    refused with ``Conflict(code=ports.TASK_CONFLICT)``. ``scope`` is
    ``"<origin>:<task type>"``: the retention sweep forgets the ids with its origin's images
    (``RetentionService``).
    """

    scope: str
    task_id: str
    fingerprint: str


@dataclass(frozen=True)
class Content:
    stream: BinaryIO
    mime: str
    size: int
