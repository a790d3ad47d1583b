"""The real clock and id source (tests inject their own)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def new_id() -> str:
    """Random UUID v4: unguessable, and what the Runware contract expects for imageUUID."""
    return str(uuid.uuid4())
