"""Refuses requests whose body framing is ambiguous, before any route sees them.

``Transfer-Encoding`` together with ``Content-Length`` is the classic request-smuggling
shape: a proxy in front may frame the body by one header while this server (h11: by
``Transfer-Encoding``) frames it by the other, so the bytes after the first body would be read
as a second, unchecked request. RFC 9112 (6.1) allows a server to reject such a message; here
it is answered 400 and the connection is closed, whatever the route.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

_MESSAGE = "A request must not carry both Transfer-Encoding and Content-Length."


class FramingGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _ambiguous(scope["headers"]):
            body = json.dumps({"error": {"code": "bad_request", "message": _MESSAGE}}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _ambiguous(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name.lower() for name, _ in headers}
    return b"transfer-encoding" in names and b"content-length" in names
