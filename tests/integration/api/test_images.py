"""/v1/images: uploads three ways (multipart, raw body, JSON), metadata, content and delete."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api, serving

METADATA_FIELDS = {
    "id",
    "url",
    "displayUrl",
    "thumbnailUrl",
    "modelId",
    "type",
    "format",
    "width",
    "height",
    "bytes",
    "sha256",
    "name",
    "caption",
    "captionSource",
    "createdAt",
    "lastUsedAt",
}
FORMATS: list[tuple[str, Callable[[], bytes]]] = [
    ("jpeg", lambda: imagefactory.jpeg(40, 30)),
    ("png", lambda: imagefactory.png(40, 30)),
    ("webp", lambda: imagefactory.webp(40, 30)),
    ("heif", lambda: imagefactory.heic(40, 30)),
    ("bmp", lambda: imagefactory.bmp(40, 30)),
    ("gif", lambda: imagefactory.gif(40, 30)),
]


def create_model(api: Api) -> str:
    response = api.client.post("/v1/models", json={"displayName": "m"}, headers=api.headers)
    assert response.status_code == 201, response.text
    model_id: str = response.json()["id"]
    return model_id


def post_multipart(
    api: Api,
    image: bytes,
    meta: dict[str, Any] | str,
    *,
    filename: str = "photo.png",
    encoding: str = "field",
) -> httpx2.Response:
    """``data`` as a plain form field, or as a part typed application/json (with a file name
    or without), as browsers' FormData and Python's requests send it."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    file = (filename, image, "application/octet-stream")
    if encoding == "field":
        return api.client.post(
            "/v1/images", files={"file": file}, data={"data": text}, headers=api.headers
        )
    part_name = "data.json" if encoding == "json-file" else None
    return api.client.post(
        "/v1/images",
        files={"file": file, "data": (part_name, text, "application/json")},
        headers=api.headers,
    )


def post_raw(api: Api, image: bytes, **params: str) -> httpx2.Response:
    return api.client.post(
        "/v1/images",
        params=params,
        content=image,
        headers={**api.headers, "Content-Type": "application/octet-stream"},
    )


def post_json(api: Api, body: dict[str, Any]) -> httpx2.Response:
    return api.client.post("/v1/images", json=body, headers=api.headers)


def data_uri(image: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


def assert_error(response: httpx2.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def assert_stored(api: Api, created: httpx2.Response, original: bytes) -> dict[str, Any]:
    """The upload answered 201 and the image reads back byte-exact with matching metadata."""
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    # An upload also answers the dataset check's warnings; a read does not.
    assert set(body) == METADATA_FIELDS | {"warnings"}
    assert body["sha256"] == hashlib.sha256(original).hexdigest()
    assert body["bytes"] == len(original)
    got = api.client.get(f"/v1/images/{body['id']}", headers=api.headers)
    assert got.status_code == 200
    assert set(got.json()) == METADATA_FIELDS
    assert {k: v for k, v in got.json().items() if not k.endswith(("url", "Url"))} == {
        k: v for k, v in body.items() if not k.endswith(("url", "Url")) and k != "warnings"
    }
    content = api.client.get(
        f"/v1/images/{body['id']}/content", params={"variant": "original"}, headers=api.headers
    )
    assert content.status_code == 200
    assert content.content == original
    return body


def blob_files(settings: Settings) -> list[Path]:
    """Stored blobs (``<root>/ab/cd/<sha256>``), not the store's own temp folder."""
    root = settings.data_dir / "blobs"
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]


@pytest.mark.parametrize("encoding", ["field", "json-part", "json-file"])
@pytest.mark.parametrize("model_key", ["modelID", "modelId"])
def test_multipart_upload(api: Api, encoding: str, model_key: str) -> None:
    model_id = create_model(api)
    original = imagefactory.jpeg(48, 32, with_gps=True)

    created = post_multipart(
        api, original, {model_key: model_id, "type": "modelInput"}, encoding=encoding
    )

    body = assert_stored(api, created, original)
    assert body["modelId"] == model_id
    assert body["type"] == "modelInput"
    assert (body["format"], body["width"], body["height"]) == ("jpeg", 48, 32)
    assert body["name"] == "photo.png"  # the client's name, kept as metadata only


def test_raw_upload_with_query_parameters(api: Api) -> None:
    model_id = create_model(api)
    original = imagefactory.png(30, 20, alpha=True)

    created = post_raw(api, original, modelId=model_id, type="auxiliaryType", name="ref.png")

    body = assert_stored(api, created, original)
    assert (body["modelId"], body["type"], body["name"]) == (model_id, "auxiliaryType", "ref.png")
    assert (body["format"], body["width"], body["height"]) == ("png", 30, 20)


def test_json_upload_with_a_data_uri(api: Api) -> None:
    model_id = create_model(api)
    original = imagefactory.webp(24, 24)

    created = post_json(
        api, {"image": data_uri(original, "image/webp"), "modelId": model_id, "type": "modelInput"}
    )

    body = assert_stored(api, created, original)
    assert (body["modelId"], body["type"], body["format"]) == (model_id, "modelInput", "webp")


def test_json_upload_with_bare_base64(api: Api) -> None:
    original = imagefactory.png(12, 12)

    created = post_json(
        api, {"image": base64.b64encode(original).decode(), "type": "auxiliaryType"}
    )

    body = assert_stored(api, created, original)
    assert body["format"] == "png"


@pytest.fixture
def fetching_api(settings: Settings, httpserver: HTTPServer) -> Iterator[Api]:
    allowed = f"{httpserver.host}:{httpserver.port}"
    with serving(settings.model_copy(update={"fetch_allow_hosts": [allowed]})) as api:
        yield api


def test_json_upload_with_a_url(fetching_api: Api, httpserver: HTTPServer) -> None:
    api = fetching_api
    model_id = create_model(api)
    original = imagefactory.jpeg(20, 10)
    httpserver.expect_request("/pictures/dress.jpg").respond_with_data(
        original, content_type="image/jpeg"
    )

    created = post_json(
        api,
        {
            "image": httpserver.url_for("/pictures/dress.jpg") + "?size=large",
            "modelId": model_id,
            "type": "auxiliaryType",
        },
    )

    body = assert_stored(api, created, original)
    assert (body["format"], body["width"], body["height"]) == ("jpeg", 20, 10)
    assert body["name"] == "dress.jpg"


def test_a_url_that_cannot_be_fetched_is_422(fetching_api: Api, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/missing.png").respond_with_data("gone", status=404)

    response = post_json(
        fetching_api, {"image": httpserver.url_for("/missing.png"), "type": "auxiliaryType"}
    )

    assert_error(response, 422, "fetch_failed")
    assert "gone" not in response.text


def test_a_url_to_a_private_address_is_refused_before_connecting(
    api: Api, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/secret.png").respond_with_data(imagefactory.png(4, 4))

    response = post_json(api, {"image": httpserver.url_for("/secret.png"), "type": "auxiliaryType"})

    assert_error(response, 422, "fetch_failed")
    assert httpserver.log == []


@pytest.mark.parametrize(("fmt", "make"), FORMATS, ids=[f for f, _ in FORMATS])
def test_every_image_format_is_accepted(api: Api, fmt: str, make: Callable[[], bytes]) -> None:
    original = make()

    body = assert_stored(api, post_raw(api, original, type="auxiliaryType"), original)

    assert (body["format"], body["width"], body["height"]) == (fmt, 40, 30)


def test_reference_images_may_have_no_model(api: Api) -> None:
    original = imagefactory.png(8, 8)

    body = assert_stored(api, post_multipart(api, original, {"type": "auxiliaryType"}), original)

    assert body["modelId"] is None
    assert body["type"] == "auxiliaryType"


def test_rotated_jpeg_reports_the_oriented_size(api: Api) -> None:
    for orientation, size in ((1, (64, 32)), (3, (64, 32)), (6, (32, 64)), (8, (32, 64))):
        original = imagefactory.jpeg(64, 32, exif_orientation=orientation)
        body = assert_stored(api, post_raw(api, original, type="auxiliaryType"), original)
        assert (body["width"], body["height"]) == size, orientation


def test_names_are_sanitised(api: Api) -> None:
    cases: list[tuple[str, str | None]] = [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/absolute/path/to/photo.jpg", "photo.jpg"),
        ("bell\x07and\x1bescape.png", "bellandescape.png"),
        ("  spaced.png  ", "spaced.png"),
        ("../", None),
    ]
    for given, kept in cases:
        via_json = post_json(
            api,
            {"image": data_uri(imagefactory.png(4, 4)), "type": "auxiliaryType", "name": given},
        )
        via_query = post_raw(api, imagefactory.png(4, 4), type="auxiliaryType", name=given)
        assert via_json.status_code == 201, via_json.text
        assert via_query.status_code == 201, via_query.text
        assert via_json.json()["name"] == kept, given
        assert via_query.json()["name"] == kept, given


@pytest.mark.parametrize(
    ("given", "kept"),
    [("../../etc/passwd", "passwd"), ("dir/" + "x" * 300 + ".png", "x" * 255)],
    ids=["traversal", "long"],
)
def test_multipart_file_names_are_sanitised(api: Api, given: str, kept: str) -> None:
    response = post_multipart(
        api, imagefactory.png(4, 4), {"type": "auxiliaryType"}, filename=given
    )

    assert response.status_code == 201, response.text
    assert response.json()["name"] == kept
    got = api.client.get(f"/v1/images/{response.json()['id']}", headers=api.headers).json()
    assert got["name"] == kept


def test_names_longer_than_255_characters_are_422_in_json_and_query(api: Api) -> None:
    name = "x" * 256 + ".png"

    via_json = post_json(
        api, {"image": data_uri(imagefactory.png(4, 4)), "type": "auxiliaryType", "name": name}
    )
    via_query = post_raw(api, imagefactory.png(4, 4), type="auxiliaryType", name=name)

    for response in (via_json, via_query):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "name"


def test_uploads_to_unknown_models_are_404(api: Api) -> None:
    missing = "00000000-0000-4000-8000-000000000000"

    responses = [
        post_raw(api, imagefactory.png(4, 4), modelId=missing, type="modelInput"),
        post_multipart(api, imagefactory.png(4, 4), {"modelID": missing, "type": "modelInput"}),
        post_json(
            api,
            {"image": data_uri(imagefactory.png(4, 4)), "modelId": missing, "type": "modelInput"},
        ),
    ]

    for response in responses:
        assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "make",
    [imagefactory.not_an_image, imagefactory.svg, lambda: b"plain text, not an image"],
    ids=["pdf", "svg", "text"],
)
def test_non_images_are_415_whichever_way_they_come(
    api: Api, settings: Settings, make: Callable[[], bytes]
) -> None:
    data = make()

    responses = [
        post_raw(api, data, type="auxiliaryType"),
        post_multipart(api, data, {"type": "auxiliaryType"}),
        post_json(api, {"image": base64.b64encode(data).decode(), "type": "auxiliaryType"}),
    ]

    for response in responses:
        assert_error(response, 415, "unsupported_format")
    assert blob_files(settings) == []


def test_an_svg_data_uri_is_415(api: Api) -> None:
    svg = base64.b64encode(imagefactory.svg()).decode()

    response = post_json(api, {"image": f"data:image/svg+xml;base64,{svg}", "type": "modelInput"})

    assert_error(response, 415, "unsupported_format")


def test_a_truncated_image_is_422(api: Api, settings: Settings) -> None:
    response = post_raw(api, imagefactory.truncated_jpeg(), type="auxiliaryType")

    assert_error(response, 422, "corrupt_image")
    assert blob_files(settings) == []


def test_a_pixel_bomb_is_422(api: Api, settings: Settings) -> None:
    bomb = imagefactory.pixel_bomb_png(30_000, 30_000)

    responses = [
        post_raw(api, bomb, type="auxiliaryType"),
        post_json(api, {"image": data_uri(bomb), "type": "auxiliaryType"}),
    ]

    for response in responses:
        assert_error(response, 422, "image_too_large")
    assert blob_files(settings) == []


def test_bad_base64_is_400(api: Api) -> None:
    for image in (
        "not base64 at all!",
        "iVBORw0KGgo=====",
        "data:image/png;base64,%%%%",
        "data:image/png,plain-not-base64",
        "data:;base64",
    ):
        response = post_json(api, {"image": image, "type": "auxiliaryType"})
        assert response.status_code == 400, (image, response.text)
        assert response.json()["error"]["code"] == "bad_request", image


def test_invalid_json_bodies_are_422(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "auxiliaryType"}, "image"),
        ({"image": "aGk="}, "type"),
        ({"image": "aGk=", "type": "output"}, "type"),
        ({"image": "aGk=", "type": "auxiliaryType", "sha256": "0" * 64}, "sha256"),
        ({"image": "aGk=", "type": "auxiliaryType", "accountId": "someone"}, "accountId"),
        ({"image": 42, "type": "auxiliaryType"}, "image"),
    ]
    for body, field in cases:
        response = post_json(api, body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, body


def test_a_json_body_that_does_not_parse_is_400(api: Api) -> None:
    response = api.client.post(
        "/v1/images",
        content=b'{"image": ',
        headers={**api.headers, "Content-Type": "application/json"},
    )

    assert_error(response, 400, "bad_request")


def test_invalid_multipart_data_is_rejected(api: Api, settings: Settings) -> None:
    cases: list[tuple[dict[str, Any] | str, int, str | None]] = [
        ({"modelID": None}, 422, "type"),
        ({"type": "output"}, 422, "type"),
        ({"type": "auxiliaryType", "id": "chosen-by-client"}, 422, "id"),
        ({"type": "auxiliaryType", "sha256": "0" * 64}, 422, "sha256"),
        ('["not", "an", "object"]', 400, None),
        ("{not json", 400, None),
    ]
    for meta, status, field in cases:
        for encoding in ("field", "json-part", "json-file"):
            response = post_multipart(api, imagefactory.png(4, 4), meta, encoding=encoding)
            assert response.status_code == status, (meta, encoding, response.text)
            assert response.json()["error"].get("field") == field, (meta, encoding)
    assert blob_files(settings) == []


def test_multipart_without_a_file_part_is_400(api: Api) -> None:
    response = api.client.post(
        "/v1/images",
        files={"data": (None, json.dumps({"type": "auxiliaryType"}), "application/json")},
        headers=api.headers,
    )

    assert_error(response, 400, "bad_request")


def test_multipart_with_too_many_files_is_400(api: Api) -> None:
    png = imagefactory.png(4, 4)

    response = api.client.post(
        "/v1/images",
        files=[("file", ("a.png", png)), ("file", ("b.png", png)), ("file", ("c.png", png))],
        data={"data": json.dumps({"type": "auxiliaryType"})},
        headers=api.headers,
    )

    assert_error(response, 400, "bad_request")


def test_multipart_with_an_oversized_data_field_is_400(api: Api) -> None:
    response = post_multipart(
        api,
        imagefactory.png(4, 4),
        json.dumps({"type": "auxiliaryType", "pad": "x" * 100_000}),
    )

    assert_error(response, 400, "bad_request")


def test_raw_upload_needs_a_valid_type(api: Api) -> None:
    missing = post_raw(api, imagefactory.png(4, 4))
    output = post_raw(api, imagefactory.png(4, 4), type="output")

    assert_error(missing, 422, "invalid_request")
    assert missing.json()["error"]["field"] == "type"
    assert_error(output, 422, "invalid_request")
    assert output.json()["error"]["field"] == "type"


def test_raw_upload_with_an_empty_body_is_400(api: Api) -> None:
    assert_error(post_raw(api, b"", type="auxiliaryType"), 400, "bad_request")


def test_bodies_over_the_request_limit_are_413(settings: Settings) -> None:
    limit = 4096
    container = build(settings.model_copy(update={"max_request_bytes": limit}))
    big = imagefactory.png(4, 4) + b"\0" * limit
    try:
        with TestClient(create_app(container=container)) as client:
            api = Api(
                client=client, container=container, key=container.keys.create(name="t").plaintext
            )
            responses = [
                post_raw(api, big, type="auxiliaryType"),
                post_multipart(api, big, {"type": "auxiliaryType"}),
                post_json(api, {"image": data_uri(big), "type": "auxiliaryType"}),
            ]
    finally:
        container.close()

    for response in responses:
        assert_error(response, 413, "payload_too_large")
    assert blob_files(settings) == []


def test_metadata_of_unknown_images_is_404(api: Api) -> None:
    response = api.client.get(
        "/v1/images/00000000-0000-4000-8000-000000000000", headers=api.headers
    )

    assert_error(response, 404, "not_found")


def test_delete_removes_the_image_and_its_bytes(api: Api, settings: Settings) -> None:
    kept = post_raw(api, imagefactory.jpeg(8, 8), type="auxiliaryType").json()
    blobs_of_kept = sorted(blob_files(settings))
    original = imagefactory.png(16, 16)
    image = assert_stored(api, post_raw(api, original, type="auxiliaryType"), original)
    assert len(blob_files(settings)) > len(blobs_of_kept)

    response = api.client.delete(f"/v1/images/{image['id']}", headers=api.headers)

    assert response.status_code == 204
    assert response.content == b""
    path = f"/v1/images/{image['id']}"
    assert_error(api.client.get(path, headers=api.headers), 404, "not_found")
    assert_error(api.client.get(f"{path}/content", headers=api.headers), 404, "not_found")
    assert_error(api.client.get(image["url"]), 404, "not_found")
    assert_error(api.client.delete(path, headers=api.headers), 404, "not_found")
    assert sorted(blob_files(settings)) == blobs_of_kept  # original and variants are gone
    assert api.client.get(kept["url"]).status_code == 200


def test_identical_uploads_are_separate_images_sharing_bytes(api: Api) -> None:
    original = imagefactory.png(16, 16)
    first = assert_stored(api, post_raw(api, original, type="auxiliaryType"), original)
    second = assert_stored(api, post_raw(api, original, type="auxiliaryType"), original)
    assert first["id"] != second["id"]

    assert api.client.delete(f"/v1/images/{first['id']}", headers=api.headers).status_code == 204

    assert api.client.get(second["url"]).content == original


def test_a_png_chunk_flood_is_refused_with_a_machine_readable_code(api: Api) -> None:
    response = post_raw(api, imagefactory.png_chunk_flood(b"tEXt", b"k\x00v"), type="auxiliaryType")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_chunks"
