"""PhotoGPT images (seeds 000/001): upload, list, get, delete; limits; the error envelope."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator

import httpx2
import pytest
from fastapi.testclient import TestClient

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api
from tests.dialects.photogpt.helpers import (
    IMAGE_FIELDS,
    PREFIX,
    assert_error,
    create_model,
    ok_result,
    photogpt_headers,
    same_image,
    upload,
)
from tests.integration.test_concurrency import all_at_once, assert_blobs_match_rows


@pytest.mark.parametrize("data_as_part", [True, False], ids=["data-part", "data-field"])
def test_upload_answers_the_image_object_with_a_working_url(api: Api, data_as_part: bool) -> None:
    model_id = create_model(api.client, api.key)
    original = imagefactory.jpeg(64, 48)

    image = ok_result(upload(api.client, api.key, model_id, original, data_as_part=data_as_part))

    assert set(image) == IMAGE_FIELDS
    assert image["modelID"] == model_id
    assert image["type"] == "modelInput"
    assert image["liked"] is False
    assert image["data"]["width"] == 64
    assert image["data"]["height"] == 48
    fetched = api.client.get(image["url"])  # a signed link: no headers needed
    assert fetched.status_code == 200
    assert fetched.content == original  # the original, byte for byte
    got = ok_result(api.client.get(f"{PREFIX}/images/{image['id']}", headers=api.headers))
    assert same_image(got, image)


def test_accepted_formats_and_415_for_the_others(api: Api) -> None:
    model_id = create_model(api.client, api.key)
    accepted = {
        "jpg": imagefactory.jpeg(20, 10),
        "png": imagefactory.png(20, 10),
        "webp": imagefactory.webp(20, 10),
        "heic": imagefactory.heic(20, 10),
    }
    for name, data in accepted.items():
        image = ok_result(upload(api.client, api.key, model_id, data, name=f"a.{name}"))
        assert image["data"]["format"] in {"jpeg", "png", "webp", "heif"}
    refused = {
        "gif": imagefactory.gif(20, 10),
        "bmp": imagefactory.bmp(20, 10),
        "pdf": imagefactory.not_an_image(),
        "svg": imagefactory.svg(),
    }
    for name, data in refused.items():
        response = upload(api.client, api.key, model_id, data, name=f"a.{name}")
        assert_error(response, 415, "unsupported_format")


def test_list_filters_and_pages(api: Api) -> None:
    model_id = create_model(api.client, api.key)
    inputs = [
        ok_result(upload(api.client, api.key, model_id, imagefactory.jpeg(20 + i, 10)))["id"]
        for i in range(3)
    ]
    aux = ok_result(
        upload(api.client, api.key, model_id, imagefactory.png(8, 8), type_="auxiliaryType")
    )["id"]
    url = f"{PREFIX}/models/{model_id}/images"

    def listed(**params: str | int) -> list[str]:
        response = api.client.get(url, params=params, headers=api.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"page", "pageSize", "result", "status"}
        assert body["status"] == "OK"
        assert body["page"] == params.get("pageNum", 1)
        assert body["pageSize"] == params.get("pageSize", 20)
        assert all(set(item) == IMAGE_FIELDS for item in body["result"])
        return [item["id"] for item in body["result"]]

    assert set(listed(imageType="all", pageNum=1, pageSize=20)) == {*inputs, aux}
    assert set(listed(imageType="input")) == set(inputs)
    assert listed(imageType="auxiliaryType") == [aux]
    assert listed(imageType="output") == []
    assert set(listed()) == {*inputs, aux}  # imageType defaults to all
    newest_first = listed(imageType="input")
    assert listed(imageType="input", pageNum=2, pageSize=1) == [newest_first[1]]
    assert listed(imageType="input", pageNum=9, pageSize=1) == []


def test_delete_removes_the_image_everywhere(api: Api) -> None:
    model_id = create_model(api.client, api.key)
    image = ok_result(upload(api.client, api.key, model_id, imagefactory.jpeg(30, 20)))

    deleted = api.client.delete(f"{PREFIX}/images/{image['id']}", headers=api.headers)

    assert ok_result(deleted) == {"id": image["id"]}
    assert_error(
        api.client.get(f"{PREFIX}/images/{image['id']}", headers=api.headers), 404, "not_found"
    )
    assert_error(
        api.client.delete(f"{PREFIX}/images/{image['id']}", headers=api.headers), 404, "not_found"
    )
    assert api.client.get(f"/v1/images/{image['id']}", headers=api.headers).status_code == 404
    listed = api.client.get(f"{PREFIX}/models/{model_id}/images", headers=api.headers)
    assert listed.json()["result"] == []
    assert api.client.get(image["url"]).status_code == 404
    assert_blobs_match_rows(api.container)


def test_every_error_uses_the_photogpt_envelope(api: Api) -> None:
    model_id = create_model(api.client, api.key)
    jpeg = imagefactory.jpeg(10, 10)
    h = api.headers
    c = api.client
    missing_key = c.get(f"{PREFIX}/images/nope")
    assert_error(missing_key, 401, "unauthenticated")
    assert missing_key.headers["www-authenticate"] == "Bearer"
    assert_error(
        c.get(f"{PREFIX}/models", headers={"Authorization": "Bearer lf_bad"}),
        401,
        "unauthenticated",
    )
    assert_error(c.get(f"{PREFIX}/images/nope", headers=h), 404, "not_found")
    assert_error(upload(c, api.key, "no-such-model", jpeg), 404, "not_found")
    assert_error(c.post(f"{PREFIX}/images/upload", headers=h, data={"x": "y"}), 400, "bad_request")
    no_file = c.post(
        f"{PREFIX}/images/upload",
        files={"data": (None, json.dumps({"modelID": model_id, "type": "modelInput"}))},
        headers=h,
    )
    assert_error(no_file, 400, "bad_request")
    bad_json = c.post(
        f"{PREFIX}/images/upload", files={"file": ("a.jpg", jpeg)}, data={"data": "{"}, headers=h
    )
    assert_error(bad_json, 400, "bad_request")
    bad_type = upload(c, api.key, model_id, jpeg, type_="output")
    assert_error(bad_type, 422, "invalid_request")
    no_data = c.post(f"{PREFIX}/images/upload", files={"file": ("a.jpg", jpeg)}, headers=h)
    assert_error(no_data, 422, "invalid_request")
    images = f"{PREFIX}/models/{model_id}/images"
    assert_error(c.get(images, params={"imageType": "x"}, headers=h), 422, "invalid_request")
    assert_error(c.get(images, params={"pageSize": 0}, headers=h), 422, "invalid_request")
    assert_error(c.get(images, params={"pageNum": "one"}, headers=h), 422, "invalid_request")
    assert_error(c.get(f"{PREFIX}/models/nope/images", headers=h), 404, "not_found")
    assert_error(c.get(f"{PREFIX}/no/such/route", headers=h), 404, "not_found")
    assert_error(c.put(f"{PREFIX}/images/upload", headers=h), 405, "method_not_allowed")
    corrupt = upload(c, api.key, model_id, imagefactory.truncated_jpeg())
    assert_error(corrupt, 422, "corrupt_image")


def test_another_accounts_images_and_models_are_404(api: Api) -> None:
    model_id = create_model(api.client, api.key)
    image = ok_result(upload(api.client, api.key, model_id, imagefactory.jpeg(10, 10)))
    other = photogpt_headers(api.container.keys.create(name="other").plaintext)

    assert_error(api.client.get(f"{PREFIX}/images/{image['id']}", headers=other), 404, "not_found")
    assert_error(
        api.client.delete(f"{PREFIX}/images/{image['id']}", headers=other), 404, "not_found"
    )
    assert_error(
        api.client.get(f"{PREFIX}/models/{model_id}/images", headers=other), 404, "not_found"
    )
    assert_error(api.client.get(f"{PREFIX}/models/{model_id}", headers=other), 404, "not_found")
    assert api.client.get(f"{PREFIX}/images/{image['id']}", headers=api.headers).status_code == 200


def test_twenty_images_of_each_type_per_model(api: Api) -> None:
    model_id = create_model(api.client, api.key)
    for i in range(20):
        ok_result(upload(api.client, api.key, model_id, imagefactory.jpeg(16 + i, 16)))

    refused = upload(api.client, api.key, model_id, imagefactory.jpeg(99, 16))

    assert_error(refused, 409, "limit_reached")
    ok_result(upload(api.client, api.key, model_id, imagefactory.png(9, 9), type_="auxiliaryType"))


@pytest.fixture
def small_api(settings: Settings) -> Iterator[Api]:
    """Three images per type and 64 KiB per request, so limits are reached quickly."""
    container = build(
        settings.model_copy(update={"max_images_per_type": 3, "max_request_bytes": 64 * 1024})
    )
    try:
        with TestClient(create_app(container=container)) as client:
            yield Api(client, container, container.keys.create(name="small").plaintext)
    finally:
        container.close()


def test_the_limit_holds_under_concurrent_uploads(small_api: Api) -> None:
    model_id = create_model(small_api.client, small_api.key)

    def one(i: int) -> Callable[[], httpx2.Response]:
        data = imagefactory.jpeg(20 + i, 12)
        return lambda: upload(small_api.client, small_api.key, model_id, data)

    answers = all_at_once([one(i) for i in range(7)])

    assert Counter(a.status_code for a in answers) == {200: 3, 409: 4}
    for refused in (a for a in answers if a.status_code == 409):
        assert_error(refused, 409, "limit_reached")
    assert_blobs_match_rows(small_api.container)


def test_bodies_over_the_request_limit_get_413_in_the_envelope(small_api: Api) -> None:
    model_id = create_model(small_api.client, small_api.key)
    big = imagefactory.jpeg(32, 32) + b"\0" * (64 * 1024)
    h = small_api.headers

    declared = upload(small_api.client, small_api.key, model_id, big)
    assert_error(declared, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(100):
            yield b"\0" * 1024

    streamed = small_api.client.post(
        f"{PREFIX}/images/upload",
        content=chunks(),
        headers={**h, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert_error(streamed, 413, "payload_too_large")
    huge_json = small_api.client.post(
        f"{PREFIX}/models", json={"name": "x" * (70 * 1024)}, headers=h
    )
    assert_error(huge_json, 413, "payload_too_large")
    assert_blobs_match_rows(small_api.container)


def test_a_caption_in_the_data_part_is_stored_and_shown_in_data(api: Api) -> None:
    model_id = create_model(api.client, api.key)
    payload = json.dumps({"modelID": model_id, "type": "modelInput", "caption": "a red dress"})

    answer = api.client.post(
        f"{PREFIX}/images/upload",
        files={"file": ("a.jpg", imagefactory.jpeg(32, 32)), "data": (None, payload)},
        headers=photogpt_headers(api.key),
    )
    plain = ok_result(upload(api.client, api.key, model_id, imagefactory.jpeg(30, 30)))

    image = ok_result(answer)
    assert (image["data"]["caption"], image["data"]["captionSource"]) == ("a red dress", "user")
    assert (plain["data"]["caption"], plain["data"]["captionSource"]) == ("", "none")
    native = api.client.get(f"/v1/images/{image['id']}", headers=api.headers).json()
    assert native["caption"] == "a red dress"
