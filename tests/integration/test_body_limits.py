"""Request bodies are counted as they arrive: a lying or missing Content-Length changes
nothing, reading stops one chunk past the limit, the answer is a native 413, and the server
keeps serving. Multipart bodies have a cap on their parts."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api

LIMIT = 64 * 1024  # max_request_bytes in these tests
DATA_LIMIT = 32 * 1024  # max_data_bytes (/v1/models/{id}/data)
CHUNK = 8 * 1024
TOTAL = 4 * 1024 * 1024  # what a hostile client would send


@dataclass
class Limited:
    container: Container
    app: FastAPI
    headers: dict[str, str]
    model_id: str


@pytest.fixture
def limited(settings: Settings) -> Iterator[Limited]:
    small = settings.model_copy(update={"max_request_bytes": LIMIT, "max_data_bytes": DATA_LIMIT})
    container = build(small)
    try:
        key = container.keys.create(name="limits").plaintext
        headers = {"Authorization": f"Bearer {key}"}
        app = create_app(container=container)
        with TestClient(app) as client:
            made = client.post("/v1/models", json={"displayName": "Limits"}, headers=headers)
            assert made.status_code == 201
        yield Limited(container, app, headers, made.json()["id"])
    finally:
        container.close()


class CountingBody:
    """An async body that yields ``CHUNK``-sized pieces and counts how many were pulled."""

    def __init__(self, total: int = TOTAL, prefix: bytes = b"") -> None:
        self.total = total
        self.prefix = prefix
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        if self.prefix:
            self.pulled += 1
            sent += len(self.prefix)
            yield self.prefix
        while sent < self.total:
            self.pulled += 1
            piece = b"\xff" * min(CHUNK, self.total - sent)
            sent += len(piece)
            yield piece


def post_streaming(
    app: FastAPI, path: str, body: CountingBody, headers: dict[str, str]
) -> httpx.Response:
    """POST through the ASGI interface; httpx's ASGITransport pulls the body lazily."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=body.__aiter__(), headers=headers)

    return asyncio.run(go())


def assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert set(response.json()) == {"error"}


def max_chunks(limit: int) -> int:
    """Chunks needed to pass the limit, plus one of slack: nothing is read beyond that."""
    return limit // CHUNK + 2


@pytest.mark.parametrize(
    "length",
    [None, "1000", "0"],
    ids=["chunked", "lying-content-length", "zero-content-length"],
)
def test_raw_upload_stops_reading_past_the_limit(limited: Limited, length: str | None) -> None:
    body = CountingBody()
    headers = {**limited.headers, "Content-Type": "application/octet-stream"}
    if length is not None:
        headers["Content-Length"] = length
    response = post_streaming(limited.app, "/v1/images?type=modelInput", body, headers)
    assert_413(response)
    assert body.pulled <= max_chunks(LIMIT)


def test_training_data_has_its_own_smaller_limit(limited: Limited) -> None:
    body = CountingBody()
    headers = {**limited.headers, "Content-Length": "10"}
    response = post_streaming(limited.app, f"/v1/models/{limited.model_id}/data", body, headers)
    assert_413(response)
    assert body.pulled <= max_chunks(DATA_LIMIT)


def test_honest_oversize_content_length_is_refused_before_reading(limited: Limited) -> None:
    body = CountingBody(total=LIMIT + 1)
    headers = {**limited.headers, "Content-Length": str(LIMIT + 1)}
    response = post_streaming(limited.app, "/v1/images?type=modelInput", body, headers)
    assert_413(response)
    assert body.pulled == 0


def test_json_bodies_parsed_by_the_framework_get_413_too(limited: Limited) -> None:
    """FastAPI parses ``ModelCreate`` itself; a body over the limit must not become a 400."""
    body = CountingBody(prefix=b'{"displayName": "')
    headers = {**limited.headers, "Content-Type": "application/json"}
    response = post_streaming(limited.app, "/v1/models", body, headers)
    assert_413(response)
    assert body.pulled <= max_chunks(LIMIT)
    declared = {**headers, "Content-Length": str(TOTAL)}
    assert_413(post_streaming(limited.app, "/v1/models", CountingBody(), declared))


def test_json_image_upload_over_the_limit(limited: Limited) -> None:
    body = CountingBody(prefix=b'{"type": "modelInput", "image": "')
    headers = {**limited.headers, "Content-Type": "application/json"}
    assert_413(post_streaming(limited.app, "/v1/images", body, headers))
    assert body.pulled <= max_chunks(LIMIT)


def test_multipart_file_over_the_limit(limited: Limited) -> None:
    boundary = "limitboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    body = CountingBody(prefix=head)
    headers = {
        **limited.headers,
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": "200",
    }
    assert_413(post_streaming(limited.app, "/v1/images", body, headers))
    assert body.pulled <= max_chunks(LIMIT)


def test_nothing_is_left_behind_and_the_next_request_works(limited: Limited) -> None:
    headers = {**limited.headers, "Content-Type": "application/octet-stream"}
    for _ in range(3):
        assert_413(
            post_streaming(limited.app, "/v1/images?type=modelInput", CountingBody(), headers)
        )
    with TestClient(limited.app) as client:
        ok = client.post(
            f"/v1/models/{limited.model_id}/data",
            content=imagefactory.jpeg(32, 24),
            headers=limited.headers,
        )
        assert ok.status_code == 201, ok.text
    blobs = limited.container.settings.data_dir / "blobs"
    assert len(list(blobs.glob("??/??/*"))) >= 1
    assert list((blobs / "tmp").iterdir()) == []


# --- multipart part caps -----------------------------------------------------------------


def test_multipart_with_too_many_parts_is_a_400(api: Api) -> None:
    made = api.client.post("/v1/models", json={"displayName": "Parts"}, headers=api.headers)
    data = json.dumps({"modelId": made.json()["id"], "type": "modelInput"})
    jpeg = imagefactory.jpeg(16, 16)
    one_file = [("file", ("a.jpg", jpeg, "image/jpeg"))]
    cases: dict[str, tuple[list[tuple[str, tuple[str, bytes, str]]], dict[str, str]]] = {
        "too many fields": (one_file, {"data": data, **{f"extra{i}": "x" for i in range(20)}}),
        "too many files": ([("file", (f"{i}.jpg", jpeg, "image/jpeg")) for i in range(5)], {}),
        "oversize field": (one_file, {"data": data, "note": "x" * (100 * 1024)}),
    }
    for name, (files, form) in cases.items():
        response = api.client.post("/v1/images", files=files, data=form, headers=api.headers)
        assert response.status_code == 400, (name, response.text)
        assert set(response.json()) == {"error"}
        assert response.json()["error"]["code"] == "bad_request"
    good = api.client.post("/v1/images", files=one_file, data={"data": data}, headers=api.headers)
    assert good.status_code == 201, good.text
    blobs = api.container.settings.data_dir / "blobs"
    assert good.json()["sha256"] in {p.name for p in blobs.glob("??/??/*")}
    assert list((blobs / "tmp").iterdir()) == []


# --- over a real socket ------------------------------------------------------------------


@contextmanager
def serving(app: FastAPI) -> Iterator[int]:
    """uvicorn in a thread on a socket bound beforehand: connections queue until it serves."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length]


def test_chunked_upload_over_a_real_connection(limited: Limited) -> None:
    key = limited.headers["Authorization"]
    with serving(limited.app) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(
                (
                    "POST /v1/images?type=modelInput HTTP/1.1\r\nHost: test\r\n"
                    f"Authorization: {key}\r\nContent-Type: application/octet-stream\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"
                ).encode()
            )
            piece = f"{CHUNK:x}\r\n".encode() + b"\xff" * CHUNK + b"\r\n"
            sent = 0
            sock.setblocking(False)
            while sent < TOTAL:
                try:
                    sock.sendall(piece)
                    sent += CHUNK
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    break  # the server stopped reading: its answer is waiting
            sock.setblocking(True)
            status, headers, body = read_response(sock)
        assert status == 413
        assert json.loads(body)["error"]["code"] == "payload_too_large"
        assert headers["content-type"] == "application/json"

        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:  # a fresh connection
            assert client.get("/healthz").status_code == 200
            ok = client.post(
                f"/v1/models/{limited.model_id}/data",
                content=imagefactory.jpeg(32, 24),
                headers=limited.headers,
            )
            assert ok.status_code == 201, ok.text
