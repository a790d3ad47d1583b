"""The official ``runware`` SDK (0.5.24) and plain clients against a live server.

The SDK reads its timeouts from the environment when it is imported: they are set short first,
so that a wrong answer fails in seconds instead of the SDK's 60 s. ``connect()`` has no timeout
of its own (reference/sdk_contracts.md B.9) and is wrapped in ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.asyncio.client
from PIL import Image

from tests import imagefactory
from tests.dialects.conftest import LiveServer
from tests.dialects.runware.helpers import PATH, UPLOAD_FIELDS, bare, is_uuid4, upload_task

os.environ.update(
    {
        "RUNWARE_IMAGE_UPLOAD_TIMEOUT": "10000",
        "RUNWARE_IMAGE_INFERENCE_TIMEOUT": "10000",
        "RUNWARE_IMAGE_INITIAL_TIMEOUT": "10000",
        "RUNWARE_VIDEO_INITIAL_TIMEOUT": "10000",
        "RUNWARE_VIDEO_POLLING_DELAY": "1000",
    }
)
runware: Any = importlib.import_module("runware")  # untyped; imported after the env is set

CONNECT_TIMEOUT_S = 10
HTTP_TIMEOUT_S = 30


async def sdk_upload(server: LiveServer, files: list[Path], key: str) -> list[Any]:
    """Connect, authenticate and upload each file with the SDK; returns its results."""
    client = runware.Runware(api_key=key, url=server.ws_url(PATH))
    try:
        await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_S)
        assert client.isAuthenticated()
        return [await client.uploadImage(str(path)) for path in files]
    finally:
        await client.disconnect()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_the_sdk_uploads_local_png_and_jpeg(live_server: LiveServer, tmp_path: Path) -> None:
    png, jpeg = tmp_path / "wide.png", tmp_path / "photo.jpg"
    png.write_bytes(imagefactory.png(2600, 1300))  # stored at most 2048 px on its long side
    jpeg.write_bytes(imagefactory.jpeg(120, 90))

    results = asyncio.run(sdk_upload(live_server, [png, jpeg], live_server.key))
    gc.collect()  # whatever the SDK left open goes now (see the bad-key test)

    for result, size in zip(results, [(2048, 1024), (120, 90)], strict=True):
        assert is_uuid4(result.imageUUID)
        assert is_uuid4(result.taskUUID)
        # no headers: the signed link is enough
        shown = httpx.get(result.imageURL, timeout=HTTP_TIMEOUT_S)
        assert shown.status_code == 200
        assert shown.headers["content-type"].startswith("image/")
        assert Image.open(io.BytesIO(shown.content)).size == size
        native = httpx.get(
            live_server.url(f"/v1/images/{result.imageUUID}"),
            headers=live_server.headers,
            timeout=HTTP_TIMEOUT_S,
        )
        assert native.json()["type"] == "auxiliaryType"


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_the_sdk_reports_a_bad_key(live_server: LiveServer, tmp_path: Path) -> None:
    """After a refused key the SDK reconnects a few times on its own and never closes those
    sockets (B.6: "It does not close the old socket"); they are collected here, where their
    ResourceWarning is expected, instead of surfacing in a later test."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(imagefactory.png(8, 8))

    async def attempt() -> tuple[bool, str]:
        client = runware.Runware(api_key="lf_not-a-key", url=live_server.ws_url(PATH))
        try:
            await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_S)  # returns, never raises
            authenticated: bool = client.isAuthenticated()
            try:
                await asyncio.wait_for(client.uploadImage(str(photo)), CONNECT_TIMEOUT_S)
            except ConnectionError as exc:
                return authenticated, str(exc)
            return authenticated, "no error"
        finally:
            await client.disconnect()

    authenticated, error = asyncio.run(attempt())
    gc.collect()

    assert not authenticated
    assert "Invalid API key" in error


def test_the_http_form_with_a_plain_client(live_server: LiveServer) -> None:
    task = upload_task(bare(imagefactory.webp(64, 32)))

    answer = httpx.post(
        live_server.url(PATH),
        json=[{"taskType": "ping", "ping": True}, task],
        headers=live_server.headers,
        timeout=HTTP_TIMEOUT_S,
    )

    assert answer.status_code == 200, answer.text
    pong, item = answer.json()["data"]
    assert pong == {"taskType": "ping", "pong": True}
    assert set(item) == UPLOAD_FIELDS
    assert item["taskUUID"] == task["taskUUID"]
    assert httpx.get(item["imageURL"], timeout=HTTP_TIMEOUT_S).status_code == 200
    refused = httpx.post(
        live_server.url(PATH),
        json=[task],
        headers={"Authorization": "Bearer x"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "invalidApiKey"


def test_ping_and_upload_over_a_raw_websocket(live_server: LiveServer) -> None:
    async def talk() -> list[dict[str, Any]]:
        async with websockets.asyncio.client.connect(live_server.ws_url(PATH)) as ws:
            frames: list[dict[str, Any]] = []
            await ws.send(json.dumps([{"taskType": "ping", "ping": True}]))
            frames.append(json.loads(await ws.recv()))
            await ws.send(json.dumps([{"taskType": "authentication", "apiKey": live_server.key}]))
            frames.append(json.loads(await ws.recv()))
            await ws.send(json.dumps([upload_task(bare(imagefactory.gif(10, 10)), TASK)]))
            frames.append(json.loads(await ws.recv()))
            return frames

    pong, auth, uploaded = asyncio.run(asyncio.wait_for(talk(), 20))

    assert pong == {"data": [{"taskType": "ping", "pong": True}]}
    assert uuid.UUID(auth["data"][0]["connectionSessionUUID"])
    assert uploaded["data"][0]["taskUUID"] == TASK


TASK = str(uuid.uuid4())
