"""Runware wire helpers shared by the Runware and cross-dialect tests."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import ImageRow
from loraforge.bootstrap import Container

PATH = "/compat/runware/v1"
UPLOAD_FIELDS = {"taskType", "taskUUID", "imageUUID", "imageURL"}


def task_uuid() -> str:
    return str(uuid.uuid4())


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def bare(data: bytes) -> str:
    return base64.b64encode(data).decode()


def upload_task(image: str, task_id: str | None = None) -> dict[str, Any]:
    return {"taskType": "imageUpload", "taskUUID": task_id or task_uuid(), "image": image}


def is_uuid4(value: str) -> bool:
    return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value


def runware_image_count(container: Container) -> int:
    with Session(container.uow.engine) as session:
        count = session.scalar(
            select(func.count()).select_from(ImageRow).where(ImageRow.origin == "runware")
        )
    return count or 0
