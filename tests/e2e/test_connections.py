"""Connections against a real ``loraforge serve``: timeouts for request heads, stalled bodies,
idle keep-alive and unauthenticated WebSockets; ambiguous framing refused. Raw sockets, so
the bytes on the wire are exactly what the test says."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.e2e.servers import Server, serving

TIMEOUT_S = 1.0
SLACK_S = 3.0  # scheduling on a busy CI machine; far below "never"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("conn")
    with serving(
        data / "data",
        f"sqlite:///{data / 'loraforge.db'}",
        LORAFORGE_WORKERS="0",
        LORAFORGE_HEADER_TIMEOUT_S=str(TIMEOUT_S),
        LORAFORGE_BODY_TIMEOUT_S=str(TIMEOUT_S),
        LORAFORGE_KEEPALIVE_TIMEOUT_S="1",
        LORAFORGE_WS_AUTH_TIMEOUT_S=str(TIMEOUT_S),
    ) as running:
        yield running


def open_socket(server: Server) -> socket.socket:
    address = urlsplit(server.base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    sock.settimeout(TIMEOUT_S + SLACK_S + 5)  # a hang fails the test instead of blocking it
    return sock


def until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, received = time.monotonic(), b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with open_socket(server) as sock:
        received, waited = until_closed(sock)
    assert received == b""
    assert waited < TIMEOUT_S + SLACK_S


def test_a_partial_request_head_is_answered_408_and_closed(server: Server) -> None:
    with open_socket(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        received, waited = until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert waited < TIMEOUT_S + SLACK_S


def test_a_trickled_request_head_is_closed_despite_progress(server: Server) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    with open_socket(server) as sock:
        started, sent = time.monotonic(), 0
        # The attack itself: one byte per fifth of the limit, until the server hangs up. A
        # byte in flight as it closes may turn its FIN into a reset: closed all the same.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while sent < len(head) and not select.select([sock], [], [], TIMEOUT_S / 5)[0]:
                sock.sendall(head[sent : sent + 1])
                sent += 1
            until_closed(sock)
        closed_after = time.monotonic() - started
    assert sent < len(head), "the whole head went through: no deadline"
    assert closed_after < TIMEOUT_S + SLACK_S


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with open_socket(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received, waited = until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert waited < 1 + SLACK_S


def test_a_stalled_chunked_body_gets_408_and_the_connection_closes(server: Server) -> None:
    with open_socket(server) as sock:
        sock.sendall(
            b"POST /v1/models HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {server.key}\r\n".encode()
            + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b'5\r\n{"dis\r\n'  # then nothing more, ever
        )
        received, waited = until_closed(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received
    assert b"connection: close" in head.lower()
    assert b'"request_timeout"' in body
    assert waited < TIMEOUT_S + SLACK_S


def test_transfer_encoding_with_content_length_is_refused(server: Server) -> None:
    smuggled = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
    with open_socket(server) as sock:
        sock.sendall(
            b"POST /v1/models HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {server.key}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"0\r\n\r\n"
            + smuggled
        )
        received, _ = until_closed(sock)
    assert received.startswith(b"HTTP/1.1 400 "), received
    assert b'"bad_request"' in received
    assert received.count(b"HTTP/1.1 ") == 1  # the smuggled request was never answered


def test_an_unauthenticated_websocket_is_closed_with_a_close_frame(server: Server) -> None:
    url = server.base_url.replace("http://", "ws://") + "/compat/runware/v1"
    started = time.monotonic()
    with ws_connect(url, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=TIMEOUT_S + SLACK_S)
    assert closed.value.rcvd is not None, "no close frame"
    assert closed.value.rcvd.code == 1008
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S


def test_an_authenticated_websocket_stays_open_past_the_deadline(server: Server) -> None:
    url = server.base_url.replace("http://", "ws://") + "/compat/runware/v1"
    with ws_connect(url, open_timeout=10) as ws:
        ws.send(f'[{{"taskType": "authentication", "apiKey": "{server.key}"}}]')
        assert '"connectionSessionUUID"' in str(ws.recv(timeout=10))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=TIMEOUT_S + 0.5)  # nothing comes, and the socket is not closed
        ws.send('[{"taskType": "ping", "ping": true}]')
        assert '"pong"' in str(ws.recv(timeout=10))


def test_a_kept_alive_connection_serves_several_requests(server: Server) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with open_socket(server) as sock:
        for _ in range(3):
            sock.sendall(request)
            answer = b""
            while not answer.endswith(b"}"):  # /healthz answers a small JSON object
                chunk = sock.recv(65536)
                assert chunk, "closed while kept alive"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ")
