"""uvicorn's h11 protocol with a deadline for the request head.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but never times out a
request head: a connection that sends nothing, or a header line now and then (slowloris), is
kept forever, and a few thousand of them exhaust the server. Here every connection must send a
complete request head within ``header_timeout_s`` of opening, or of the end of the previous
response on a kept-alive connection; otherwise it is closed (with a 408 when part of a head
had arrived). Body stalls are bounded in the app (``http.body_limit``).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 26\r\nconnection: close\r\n\r\nThe request head was late."
)


class HeadDeadlineH11Protocol(H11Protocol):
    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.get_protocol() is not self or not self._waiting_for_head():
            self._disarm_head_deadline()  # upgraded to a WebSocket, or a request is running
        elif self._head_timer is None and not self.transport.is_closing():
            self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._waiting_for_head():
            # The next request on this connection; what remains of an unread body of the
            # last one counts against this deadline too (uvicorn ignores those bytes).
            self._arm_head_deadline()

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_late)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.conn.trailing_data[0]:  # part of a request is buffered: say why we hang up
            self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()


def with_header_timeout(seconds: float) -> type[H11Protocol]:
    """The protocol class to hand to uvicorn (``http=``) for a given head deadline."""
    return type(
        "HeadDeadlineH11Protocol", (HeadDeadlineH11Protocol,), {"header_timeout_s": seconds}
    )
