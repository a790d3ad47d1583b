"""Server-Sent Events: follow a training or prediction instead of polling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

POLL_S = 0.5
KEEPALIVE_S = 15.0


def event_stream(
    load: Callable[[], dict[str, Any]], *, terminal: Callable[[dict[str, Any]], bool]
) -> StreamingResponse:
    """Emit ``event: update`` with the resource's JSON whenever it changes; end when done."""

    async def events() -> AsyncIterator[str]:
        last: str | None = None
        quiet = 0.0
        while True:
            state = await run_in_threadpool(load)
            data = json.dumps(state, default=str, separators=(",", ":"))
            if data != last:
                yield f"event: update\ndata: {data}\n\n"
                last, quiet = data, 0.0
            elif quiet >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet = 0.0
            if terminal(state):
                yield f"event: done\ndata: {data}\n\n"
                return
            await asyncio.sleep(POLL_S)
            quiet += POLL_S

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
