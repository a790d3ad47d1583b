"""Server-Sent Events: follow a training or prediction instead of polling.

Every stream of one subject shares one poll (``http.event_hub``); each renders what was read
for its own client (links are signed per request). The stream always ends with a complete,
cleanly terminated body: ``event: done`` at a final status, or ``event: error`` (the native
error body, e.g. ``not_found`` when the subject is deleted mid-stream).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Hashable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from loraforge.api.errors import error_body
from loraforge.domain.entities import Principal
from loraforge.http.event_hub import EventHub

KEEPALIVE_S = 15.0

Extra = tuple[str, str, dict[str, Any]]
"""An extra event: its name, an id it is sent once by, its data."""


def hub_of(request: Request) -> EventHub:
    hub: EventHub = request.app.state.event_hub
    return hub


def event_stream(
    request: Request,
    who: Principal,
    *,
    subject: Hashable,
    load: Callable[[], Any],
    present: Callable[[Any], dict[str, Any]],
    terminal: Callable[[Any], bool],
    extras: Callable[[Any], list[Extra]] | None = None,
) -> StreamingResponse:
    """``event: update`` with ``present(entity)`` whenever it changes, then ``done``.

    ``extras(entity)``: more events the entity carries, ``(event, id, data)``; each id is sent
    once, before the update it came with (a training's ``sample`` events).

    ``load`` reads the entity (in a worker thread, at most once per poll interval for all the
    streams of ``subject``); ``terminal(entity)`` says the stream is over. Raises
    ``RateLimited`` (429) when the account has too many streams open.
    """
    hub = hub_of(request)
    hub.open_stream(who.account_id)
    key = (subject, who.account_id)
    events = _events(hub, key, load, present, terminal, extras or (lambda _: []))
    return _EventStreamResponse(events, on_close=lambda: hub.close_stream(who.account_id))


async def _events(
    hub: EventHub,
    key: Hashable,
    load: Callable[[], Any],
    present: Callable[[Any], dict[str, Any]],
    terminal: Callable[[Any], bool],
    extras: Callable[[Any], list[Extra]],
) -> AsyncGenerator[str, None]:
    subject = hub.subscribe(key, load, terminal)
    sent: set[str] = set()
    try:
        seen, last = 0, None
        while True:
            try:
                await asyncio.wait_for(subject.wait_past(seen), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            seen = subject.version
            if subject.error is not None:
                body = error_body(subject.error.code, subject.error.message)
                yield f"event: error\ndata: {_json(body)}\n\n"
                return
            for event, extra_id, extra in extras(subject.value):
                if extra_id not in sent:
                    sent.add(extra_id)
                    yield f"event: {event}\ndata: {_json(extra)}\n\n"
            data = _json(present(subject.value))
            if data != last:
                yield f"event: update\ndata: {data}\n\n"
                last = data
            if terminal(subject.value):
                yield f"event: done\ndata: {data}\n\n"
                return
    finally:
        await hub.unsubscribe(key, subject)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


class _EventStreamResponse(StreamingResponse):
    """A stream that gives back its slot and its subscription however the response ends
    (finished, client gone, or never started)."""

    def __init__(self, events: AsyncGenerator[str, None], *, on_close: Callable[[], None]) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._events = events
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._events.aclose()
            finally:
                self._on_close()
