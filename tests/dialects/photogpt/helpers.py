"""PhotoGPT wire helpers shared by the PhotoGPT and cross-dialect tests (TestClient based)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
from fastapi.testclient import TestClient

PREFIX = "/compat/photogpt"
IMAGE_FIELDS = {
    "createdAt",
    "data",
    "folderID",
    "id",
    "liked",
    "modelID",
    "publicMediaID",
    "type",
    "updatedAt",
    "upscaledImageID",
    "upscaledImageURL",
    "url",
}


def photogpt_headers(key: str) -> dict[str, str]:
    """What PhotoGPT clients send with every request."""
    return {"Authorization": f"Bearer {key}", "API-Version": "1"}


def assert_error(response: httpx2.Response, status: int, err: str) -> dict[str, Any]:
    """PhotoGPT's error envelope, exactly."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"err", "message", "result", "status"}, body
    assert body["status"] == "NOK"
    assert body["result"] is None
    assert body["err"] == err, body
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def ok_result(response: httpx2.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result", "status"}, body
    assert body["status"] == "OK"
    return body["result"]


def create_model(client: TestClient, key: str, name: str = "Ann", **fields: Any) -> str:
    created = client.post(
        f"{PREFIX}/models", json={"name": name, **fields}, headers=photogpt_headers(key)
    )
    model_id: str = ok_result(created)["id"]
    return model_id


def upload(
    client: TestClient,
    key: str,
    model_id: str,
    data: bytes,
    *,
    type_: str = "modelInput",
    name: str = "image.jpg",
    data_as_part: bool = True,
) -> httpx2.Response:
    """``data`` as a part with its own content type (seed's Python) or a plain field (JS)."""
    payload = json.dumps({"modelID": model_id, "type": type_})
    headers = photogpt_headers(key)
    if data_as_part:
        files: dict[str, Any] = {
            "file": (name, data, "application/octet-stream"),
            "data": (None, payload, "application/json"),
        }
        return client.post(f"{PREFIX}/images/upload", files=files, headers=headers)
    return client.post(
        f"{PREFIX}/images/upload",
        files={"file": (name, data)},
        data={"data": payload},
        headers=headers,
    )


def same_image(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal image objects; ``url`` is a signed link, re-signed each minute, so only its path
    is compared."""
    return {**a, "url": a["url"].split("?")[0]} == {**b, "url": b["url"].split("?")[0]}
