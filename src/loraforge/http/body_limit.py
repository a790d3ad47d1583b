"""Counts request-body bytes as they arrive; never trusts Content-Length, never buffers past
the limit. Over the limit, reading the body raises ``PayloadTooLarge`` inside the app, so the
route's own error handler (native or vendor-shaped) answers 413.

It also bounds how long the body may stall: when no piece of it arrives for
``body_timeout_s`` (a chunked body that never ends, a client that stopped sending), reading
raises ``RequestTimeout``, answered 408 with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loraforge.domain.errors import PayloadTooLarge, RequestTimeout

LimitFor = Callable[[Scope], int]


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limit_for: LimitFor, body_timeout_s: float | None = None
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        received = 0
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if declared is not None and declared > limit:
                raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
            # Once the body is complete, receive() only waits for the client to go away
            # (streaming responses listen for that): no deadline then.
            timeout = None if body_done else self.body_timeout_s
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise RequestTimeout(
                    f"No part of the request body arrived for {self.body_timeout_s:g} s."
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
