"""Shared by every dialect's tests: the whole app under a real uvicorn server, on a free port.

``live_server`` runs ``create_app(container=...)`` (native API and every mounted dialect) for
one test, on SQLite and on PostgreSQL (``container`` from tests/conftest.py), with a key of a
fresh account. ``serve`` is the same for any ASGI app (a container built with other settings or
an injected clock). The server runs in a thread: real sockets, real HTTP and WebSocket framing,
so vendor SDKs, ``requests`` and Node's ``fetch`` talk to it as to a deployed server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.types import ASGIApp

from loraforge.app import create_app
from loraforge.bootstrap import Container

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0


@contextmanager
def serve(app: ASGIApp) -> Iterator[int]:
    """Serve ``app`` with uvicorn (lifespan on, WebSockets on) until the block ends; yields the
    port. Fails, never hangs, when the server does not start or stop in time."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_S)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@dataclass
class LiveServer:
    """A running server, the container behind it, and a key of its own account."""

    container: Container
    port: int
    key: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def new_key(self) -> str:
        """A key of another account."""
        return self.container.keys.create(name="other").plaintext


@contextmanager
def serving(container: Container) -> Iterator[LiveServer]:
    with serve(create_app(container=container)) as port:
        yield LiveServer(container, port, container.keys.create(name="live").plaintext)


@pytest.fixture
def live_server(container: Container) -> Iterator[LiveServer]:
    with serving(container) as server:
        yield server
