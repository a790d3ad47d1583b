"""/v1/models/{modelId}/data: seed 003 training data as raw image bodies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api

MiB = 1024 * 1024


def create_model(api: Api, headers: dict[str, str] | None = None) -> str:
    response = api.client.post(
        "/v1/models", json={"displayName": "Dresses"}, headers=headers or api.headers
    )
    assert response.status_code == 201, response.text
    model_id: str = response.json()["id"]
    return model_id


def add_data(api: Api, model_id: str, body: bytes, content_type: str = "image/jpeg") -> str:
    response = api.client.post(
        f"/v1/models/{model_id}/data",
        content=body,
        headers={**api.headers, "Content-Type": content_type},
    )
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"dataId", "warnings"}
    data_id: str = response.json()["dataId"]
    return data_id


def decode_data_url(data_url: str) -> tuple[str, bytes]:
    head, _, payload = data_url.partition(",")
    assert head.startswith("data:")
    assert head.endswith(";base64")
    return head[len("data:") : -len(";base64")], base64.b64decode(payload, validate=True)


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


ACCEPTED: list[tuple[str, str, Callable[[], bytes]]] = [
    ("jpeg", "image/jpeg", lambda: imagefactory.jpeg(40, 30, with_gps=True, with_metadata=True)),
    ("png", "image/png", lambda: imagefactory.png(40, 30, alpha=True)),
    ("webp", "image/webp", lambda: imagefactory.webp(40, 30)),
]


@pytest.mark.parametrize(("fmt", "mime", "make"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_get_returns_a_data_url_of_the_original_bytes(
    api: Api, fmt: str, mime: str, make: Callable[[], bytes]
) -> None:
    model_id = create_model(api)
    original = make()
    data_id = add_data(api, model_id, original, content_type="application/octet-stream")

    response = api.client.get(f"/v1/models/{model_id}/data/{data_id}", headers=api.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dataId"] == data_id
    assert body["format"] == fmt
    assert (body["width"], body["height"]) == (40, 30)
    assert body["bytes"] == len(original)
    assert body["sha256"] == hashlib.sha256(original).hexdigest()
    declared_mime, decoded = decode_data_url(body["dataUrl"])
    assert declared_mime == mime
    assert decoded == original  # byte-exact: metadata and all


def test_the_declared_content_type_does_not_decide_the_format(api: Api) -> None:
    model_id = create_model(api)
    data_id = add_data(api, model_id, imagefactory.png(8, 8), content_type="image/jpeg")

    body = api.client.get(f"/v1/models/{model_id}/data/{data_id}", headers=api.headers).json()

    assert body["format"] == "png"
    assert body["dataUrl"].startswith("data:image/png;base64,")


def test_list_returns_every_training_image_of_the_model(api: Api) -> None:
    model_id = create_model(api)
    other_model = create_model(api)
    first = add_data(api, model_id, imagefactory.jpeg(16, 16))
    second = add_data(api, model_id, imagefactory.png(24, 12))
    add_data(api, other_model, imagefactory.png(8, 8))
    reference = api.client.post(
        "/v1/images",
        params={"modelId": model_id, "type": "auxiliaryType"},
        content=imagefactory.png(8, 8),
        headers=api.headers,
    )
    assert reference.status_code == 201

    response = api.client.get(f"/v1/models/{model_id}/data", headers=api.headers)

    assert response.status_code == 200
    items = response.json()
    assert isinstance(items, list)
    assert {item["dataId"] for item in items} == {first, second}
    by_id = {item["dataId"]: item for item in items}
    assert (by_id[second]["format"], by_id[second]["width"], by_id[second]["height"]) == (
        "png",
        24,
        12,
    )
    assert all("dataUrl" not in item for item in items)


def test_list_of_a_model_without_data_is_empty(api: Api) -> None:
    model_id = create_model(api)

    response = api.client.get(f"/v1/models/{model_id}/data", headers=api.headers)

    assert response.status_code == 200
    assert response.json() == []


def test_training_data_is_a_model_input_image(api: Api) -> None:
    model_id = create_model(api)
    original = imagefactory.webp(20, 10)
    data_id = add_data(api, model_id, original)

    image = api.client.get(f"/v1/images/{data_id}", headers=api.headers).json()

    assert image["type"] == "modelInput"
    assert image["modelId"] == model_id
    assert api.client.get(image["url"]).content == original


@pytest.mark.parametrize(
    "make",
    [
        lambda: imagefactory.bmp(16, 16),
        lambda: imagefactory.gif(16, 16),
        lambda: imagefactory.heic(16, 16),
        imagefactory.not_an_image,
        imagefactory.svg,
        lambda: b"just some text that is not an image",
    ],
    ids=["bmp", "gif", "heic", "pdf", "svg", "text"],
)
def test_other_formats_are_415_and_store_nothing(api: Api, make: Callable[[], bytes]) -> None:
    model_id = create_model(api)

    response = api.client.post(
        f"/v1/models/{model_id}/data",
        content=make(),
        headers={**api.headers, "Content-Type": "image/png"},
    )

    assert_error(response, 415, "unsupported_format")
    assert api.client.get(f"/v1/models/{model_id}/data", headers=api.headers).json() == []


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (imagefactory.truncated_jpeg, "corrupt_image"),
        (lambda: imagefactory.pixel_bomb_png(20_000, 20_000), "image_too_large"),
    ],
    ids=["truncated", "pixel-bomb"],
)
def test_broken_images_are_422(api: Api, make: Callable[[], bytes], code: str) -> None:
    model_id = create_model(api)

    response = api.client.post(f"/v1/models/{model_id}/data", content=make(), headers=api.headers)

    assert_error(response, 422, code)
    assert api.client.get(f"/v1/models/{model_id}/data", headers=api.headers).json() == []


def test_an_empty_body_is_400(api: Api) -> None:
    model_id = create_model(api)

    response = api.client.post(f"/v1/models/{model_id}/data", content=b"", headers=api.headers)

    assert_error(response, 400, "bad_request")


def test_a_body_over_10_mb_is_413_and_stores_nothing(api: Api) -> None:
    model_id = create_model(api)
    body = imagefactory.png(8, 8) + b"\0" * (10 * MiB + 512 * 1024)

    response = api.client.post(f"/v1/models/{model_id}/data", content=body, headers=api.headers)

    assert_error(response, 413, "payload_too_large")
    assert api.client.get(f"/v1/models/{model_id}/data", headers=api.headers).json() == []


@pytest.mark.parametrize("declared", [None, "1000"], ids=["chunked", "lying-content-length"])
def test_the_limit_is_counted_while_streaming(settings: Settings, declared: str | None) -> None:
    """No Content-Length (or a false one): the server stops reading just past the limit."""
    limit, chunk, chunks = 64 * 1024, 16 * 1024, 40
    container = build(settings.model_copy(update={"max_data_bytes": limit}))
    app = create_app(container=container)
    key = container.keys.create(name="t").plaintext
    with TestClient(app) as client:
        created = client.post("/v1/models", json={"displayName": "m"}, headers={"X-API-Key": key})
        model_id = created.json()["id"]
    sent = 0
    messages: list[Message] = []

    async def receive() -> Message:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": b"\0" * chunk, "more_body": sent < chunks}

    async def send(message: Message) -> None:
        messages.append(message)

    headers = [(b"host", b"testserver"), (b"x-api-key", key.encode())]
    if declared is not None:
        headers.append((b"content-length", declared.encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/v1/models/{model_id}/data",
        "raw_path": f"/v1/models/{model_id}/data".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    try:
        asyncio.run(app(scope, receive, send))
    finally:
        container.close()

    start = next(m for m in messages if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert sent <= limit // chunk + 1  # never read much past the limit
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    assert b'"payload_too_large"' in body


def test_replace_keeps_the_id_and_swaps_the_bytes(api: Api) -> None:
    model_id = create_model(api)
    data_id = add_data(api, model_id, imagefactory.jpeg(32, 32))
    replacement = imagefactory.png(20, 10)

    response = api.client.put(
        f"/v1/models/{model_id}/data/{data_id}", content=replacement, headers=api.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["dataId"] == data_id
    got = api.client.get(f"/v1/models/{model_id}/data/{data_id}", headers=api.headers).json()
    assert decode_data_url(got["dataUrl"]) == ("image/png", replacement)
    assert (got["format"], got["width"], got["height"]) == ("png", 20, 10)
    assert got["sha256"] == hashlib.sha256(replacement).hexdigest()
    assert got["bytes"] == len(replacement)
    listing = api.client.get(f"/v1/models/{model_id}/data", headers=api.headers).json()
    assert [item["dataId"] for item in listing] == [data_id]


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda: imagefactory.gif(8, 8), 415),
        (imagefactory.truncated_jpeg, 422),
        (lambda: b"", 400),
    ],
    ids=["gif", "truncated", "empty"],
)
def test_a_rejected_replacement_leaves_the_original(
    api: Api, make: Callable[[], bytes], status: int
) -> None:
    model_id = create_model(api)
    original = imagefactory.jpeg(16, 16)
    data_id = add_data(api, model_id, original)

    response = api.client.put(
        f"/v1/models/{model_id}/data/{data_id}", content=make(), headers=api.headers
    )

    assert response.status_code == status, response.text
    got = api.client.get(f"/v1/models/{model_id}/data/{data_id}", headers=api.headers).json()
    assert decode_data_url(got["dataUrl"]) == ("image/jpeg", original)


def test_delete_removes_the_image_permanently(api: Api) -> None:
    model_id = create_model(api)
    kept = add_data(api, model_id, imagefactory.png(8, 8))
    data_id = add_data(api, model_id, imagefactory.jpeg(8, 8))
    link = api.client.get(f"/v1/images/{data_id}", headers=api.headers).json()["url"]

    response = api.client.delete(f"/v1/models/{model_id}/data/{data_id}", headers=api.headers)

    assert response.status_code == 204
    assert response.content == b""
    path = f"/v1/models/{model_id}/data/{data_id}"
    assert_error(api.client.get(path, headers=api.headers), 404, "not_found")
    assert_error(api.client.delete(path, headers=api.headers), 404, "not_found")
    replaced = api.client.put(path, content=imagefactory.png(8, 8), headers=api.headers)
    assert_error(replaced, 404, "not_found")
    assert_error(api.client.get(f"/v1/images/{data_id}", headers=api.headers), 404, "not_found")
    assert_error(api.client.get(link), 404, "not_found")
    listing = api.client.get(f"/v1/models/{model_id}/data", headers=api.headers).json()
    assert [item["dataId"] for item in listing] == [kept]


def test_data_is_addressed_through_its_own_model_only(api: Api) -> None:
    model_id = create_model(api)
    other_model = create_model(api)
    data_id = add_data(api, model_id, imagefactory.png(8, 8))

    wrong = f"/v1/models/{other_model}/data/{data_id}"

    assert_error(api.client.get(wrong, headers=api.headers), 404, "not_found")
    assert_error(
        api.client.put(wrong, content=imagefactory.png(4, 4), headers=api.headers),
        404,
        "not_found",
    )
    assert_error(api.client.delete(wrong, headers=api.headers), 404, "not_found")
    # Still there, unchanged, under its own model.
    got = api.client.get(f"/v1/models/{model_id}/data/{data_id}", headers=api.headers)
    assert got.status_code == 200
    assert decode_data_url(got.json()["dataUrl"])[1] == imagefactory.png(8, 8)


def test_a_reference_image_is_not_training_data(api: Api) -> None:
    model_id = create_model(api)
    reference = api.client.post(
        "/v1/images",
        params={"modelId": model_id, "type": "auxiliaryType"},
        content=imagefactory.png(8, 8),
        headers=api.headers,
    ).json()["id"]

    path = f"/v1/models/{model_id}/data/{reference}"

    assert_error(api.client.get(path, headers=api.headers), 404, "not_found")
    assert_error(api.client.delete(path, headers=api.headers), 404, "not_found")
    assert api.client.get(f"/v1/images/{reference}", headers=api.headers).status_code == 200


def test_unknown_models_are_404(api: Api) -> None:
    path = "/v1/models/00000000-0000-4000-8000-000000000000/data"

    assert_error(api.client.get(path, headers=api.headers), 404, "not_found")
    assert_error(
        api.client.post(path, content=imagefactory.png(8, 8), headers=api.headers),
        404,
        "not_found",
    )
