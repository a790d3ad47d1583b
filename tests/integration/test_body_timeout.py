"""A request body that stops arriving is answered 408 with ``Connection: close``, in each wire
format's shape, after ``body_timeout_s`` (the app is driven directly over ASGI, with a body
that sends one piece and then nothing)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message

from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.settings import Settings

TIMEOUT_S = 0.2


@pytest.fixture
def app(settings: Settings) -> Iterator[tuple[FastAPI, str]]:
    container: Container = build(settings.model_copy(update={"body_timeout_s": TIMEOUT_S}))
    try:
        application = create_app(container=container)
        with TestClient(application):  # runs the lifespan
            yield application, container.keys.create(name="t").plaintext
    finally:
        container.close()


async def stalled_request(app: FastAPI, path: str, key: str) -> list[Message]:
    sent: list[Message] = []
    pieces = [{"type": "http.request", "body": b'[{"task', "more_body": True}]
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if pieces:
            return pieces.pop()
        await never.wait()  # the client stopped sending
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=TIMEOUT_S + 5)
    return sent


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/models", lambda body: body["error"]["code"]),
        ("/compat/photogpt/models", lambda body: body["err"]),
        ("/compat/runware/v1", lambda body: body["errors"][0]["code"]),
        ("/compat/scenario/v1/models", lambda body: body["apiError"]),
    ],
)
def test_a_stalled_body_is_answered_408_in_each_wire_format(
    app: tuple[FastAPI, str], path: str, code: Any
) -> None:
    application, key = app
    sent = asyncio.run(stalled_request(application, path, key))

    start, body = sent[0], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert start["status"] == 408, body
    assert (b"connection", b"close") in start["headers"]
    assert code(body) in {"request_timeout", "requestTimeout"}
