"""/v1/models: create, read, list, rename and soft-delete custom models (seed 003 fields)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api, serving


class TickingClock:
    """Each reading is one second after the previous one: creation order is unambiguous."""

    def __init__(self) -> None:
        self._now = datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


@pytest.fixture
def ticking_api(settings: Settings) -> Iterator[Api]:
    with serving(settings, clock=TickingClock()) as api:
        yield api


def create_model(api: Api, name: str = "Summer Collection Style Model", **extra: Any) -> str:
    response = api.client.post(
        "/v1/models", json={"displayName": name, **extra}, headers=api.headers
    )
    assert response.status_code == 201, response.text
    model_id: str = response.json()["id"]
    return model_id


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field


def test_create_returns_the_model_and_get_reads_it_back(api: Api) -> None:
    response = api.client.post(
        "/v1/models",
        json={"displayName": "Summer Collection Style Model", "customModelType": "style"},
        headers=api.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "displayName",
        "customModelType",
        "baseModel",
        "createdAt",
        "updatedAt",
    }
    assert body["displayName"] == "Summer Collection Style Model"
    assert body["customModelType"] == "style"
    assert body["id"]
    got = api.client.get(f"/v1/models/{body['id']}", headers=api.headers)
    assert got.status_code == 200
    assert got.json() == body


def test_custom_model_type_is_optional(api: Api) -> None:
    model_id = create_model(api, "No type")

    body = api.client.get(f"/v1/models/{model_id}", headers=api.headers).json()

    assert body["customModelType"] is None
    assert body["displayName"] == "No type"


def test_display_name_is_trimmed(api: Api) -> None:
    model_id = create_model(api, "  Padded  ")

    model = api.client.get(f"/v1/models/{model_id}", headers=api.headers).json()

    assert model["displayName"] == "Padded"


def test_invalid_create_bodies_are_422_and_create_nothing(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "displayName"),
        ({"displayName": ""}, "displayName"),
        ({"displayName": "   "}, "displayName"),
        ({"displayName": "x" * 201}, "displayName"),
        ({"displayName": 42}, "displayName"),
        ({"displayName": "bad\x00name"}, "displayName"),
        ({"displayName": "ok", "customModelType": "t" * 101}, "customModelType"),
    ]
    for body, field in cases:
        response = api.client.post("/v1/models", json=body, headers=api.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, body
    assert api.client.get("/v1/models", headers=api.headers).json()["total"] == 0


def test_clients_cannot_set_server_owned_fields(api: Api) -> None:
    for name, value in (
        ("id", "my-own-id"),
        ("accountId", "someone-else"),
        ("createdAt", "2000-01-01T00:00:00Z"),
        ("updatedAt", "2000-01-01T00:00:00Z"),
        ("deletedAt", None),
    ):
        response = api.client.post(
            "/v1/models", json={"displayName": "x", name: value}, headers=api.headers
        )
        assert_error(response, 422, "invalid_request", field=name)
    assert api.client.get("/v1/models", headers=api.headers).json()["total"] == 0


def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    response = api.client.post(
        "/v1/models",
        content=b'{"displayName": ',
        headers={**api.headers, "Content-Type": "application/json"},
    )

    assert_error(response, 400, "bad_request")
    assert "field" not in response.json()["error"]


def test_a_json_body_over_the_request_limit_is_413(settings: Settings) -> None:
    container = build(settings.model_copy(update={"max_request_bytes": 1024}))
    try:
        with TestClient(create_app(container=container)) as client:
            headers = {"Authorization": f"Bearer {container.keys.create(name='t').plaintext}"}
            body = json.dumps({"displayName": "x", "customModelType": "y" * 2000})
            response = client.post(
                "/v1/models",
                content=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            assert_error(response, 413, "payload_too_large")
            assert client.get("/v1/models", headers=headers).json()["total"] == 0
    finally:
        container.close()


def test_list_is_newest_first_with_total_and_pages(ticking_api: Api) -> None:
    api = ticking_api
    ids = [create_model(api, f"Model {i}") for i in range(5)]
    newest_first = list(reversed(ids))

    first = api.client.get("/v1/models", params={"pageSize": 2}, headers=api.headers).json()
    second = api.client.get(
        "/v1/models", params={"pageNum": 2, "pageSize": 2}, headers=api.headers
    ).json()
    third = api.client.get(
        "/v1/models", params={"pageNum": 3, "pageSize": 2}, headers=api.headers
    ).json()
    beyond = api.client.get(
        "/v1/models", params={"pageNum": 4, "pageSize": 2}, headers=api.headers
    ).json()

    assert [m["id"] for m in first["items"]] == newest_first[:2]
    assert [m["id"] for m in second["items"]] == newest_first[2:4]
    assert [m["id"] for m in third["items"]] == newest_first[4:]
    assert beyond["items"] == []
    assert {p["total"] for p in (first, second, third, beyond)} == {5}
    assert (first["pageNum"], first["pageSize"]) == (1, 2)
    assert (third["pageNum"], third["pageSize"]) == (3, 2)


def test_list_defaults_to_the_first_page_of_20(api: Api) -> None:
    model_id = create_model(api)

    body = api.client.get("/v1/models", headers=api.headers).json()

    assert body["pageNum"] == 1
    assert body["pageSize"] == 20
    assert body["total"] == 1
    assert [m["id"] for m in body["items"]] == [model_id]
    assert body["items"][0]["displayName"] == "Summer Collection Style Model"


def test_list_shows_only_the_callers_models(api: Api) -> None:
    create_model(api)

    body = api.client.get("/v1/models", headers=api.new_account()).json()

    assert body["total"] == 0
    assert body["items"] == []


def test_list_rejects_bad_paging(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"pageNum": 0}, "pageNum"),
        ({"pageNum": -1}, "pageNum"),
        ({"pageSize": 0}, "pageSize"),
        ({"pageSize": 101}, "pageSize"),
        ({"pageNum": "two"}, "pageNum"),
        ({"pageSize": "1.5"}, "pageSize"),
    ]
    for params, field in cases:
        response = api.client.get("/v1/models", params=params, headers=api.headers)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["field"] == field, params


def test_page_size_is_bounded_by_the_setting(settings: Settings) -> None:
    container = build(settings.model_copy(update={"max_page_size": 3}))
    try:
        with TestClient(create_app(container=container)) as client:
            headers = {"Authorization": f"Bearer {container.keys.create(name='t').plaintext}"}
            ok = client.get("/v1/models", params={"pageSize": 3}, headers=headers)
            too_big = client.get("/v1/models", params={"pageSize": 4}, headers=headers)
    finally:
        container.close()

    assert ok.status_code == 200
    assert_error(too_big, 422, "invalid_request", field="pageSize")


def test_rename_changes_the_display_name_and_updated_at(ticking_api: Api) -> None:
    api = ticking_api
    model_id = create_model(api, "Summer Collection Style Model")
    before = api.client.get(f"/v1/models/{model_id}", headers=api.headers).json()

    response = api.client.put(
        f"/v1/models/{model_id}",
        json={"updatedDisplayName": "Summer Dresses Style Model"},
        headers=api.headers,
    )

    assert response.status_code == 200, response.text
    after = api.client.get(f"/v1/models/{model_id}", headers=api.headers).json()
    assert response.json() == after
    assert after["displayName"] == "Summer Dresses Style Model"
    assert after["createdAt"] == before["createdAt"]
    assert after["updatedAt"] > before["updatedAt"]


def test_invalid_rename_bodies_are_422_and_change_nothing(api: Api) -> None:
    model_id = create_model(api, "Original")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"displayName": "wrong field name"}, "updatedDisplayName"),
        ({"updatedDisplayName": "x", "displayName": "y"}, "displayName"),
        ({"updatedDisplayName": "x", "customModelType": "y"}, "customModelType"),
        ({"updatedDisplayName": ""}, "updatedDisplayName"),
        ({"updatedDisplayName": "x" * 201}, "updatedDisplayName"),
        ({}, "updatedDisplayName"),
    ]
    for body, field in cases:
        response = api.client.put(f"/v1/models/{model_id}", json=body, headers=api.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, body
    model = api.client.get(f"/v1/models/{model_id}", headers=api.headers).json()
    assert model["displayName"] == "Original"


def test_delete_is_soft_and_hides_the_model_everywhere(api: Api) -> None:
    kept = create_model(api, "Kept")
    model_id = create_model(api, "Deleted")

    deleted = api.client.delete(f"/v1/models/{model_id}", headers=api.headers)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(api.client.get(f"/v1/models/{model_id}", headers=api.headers), 404, "not_found")
    renamed = api.client.put(
        f"/v1/models/{model_id}", json={"updatedDisplayName": "x"}, headers=api.headers
    )
    assert_error(renamed, 404, "not_found")
    assert_error(api.client.delete(f"/v1/models/{model_id}", headers=api.headers), 404, "not_found")
    listing = api.client.get("/v1/models", headers=api.headers).json()
    assert listing["total"] == 1
    assert [m["id"] for m in listing["items"]] == [kept]


def test_deleting_a_model_hides_its_images(api: Api) -> None:
    model_id = create_model(api)
    upload = api.client.post(
        "/v1/images",
        files={"file": ("a.png", imagefactory.png(16, 16), "image/png")},
        data={"data": json.dumps({"modelId": model_id, "type": "auxiliaryType"})},
        headers=api.headers,
    )
    assert upload.status_code == 201, upload.text
    image = upload.json()
    data = api.client.post(
        f"/v1/models/{model_id}/data", content=imagefactory.jpeg(16, 16), headers=api.headers
    )
    assert data.status_code == 201, data.text
    data_id = data.json()["dataId"]
    unrelated = api.client.post(
        "/v1/images",
        params={"type": "auxiliaryType"},
        content=imagefactory.png(8, 8),
        headers=api.headers,
    ).json()

    assert api.client.delete(f"/v1/models/{model_id}", headers=api.headers).status_code == 204

    for path in (
        f"/v1/images/{image['id']}",
        f"/v1/images/{data_id}",
        f"/v1/models/{model_id}/data/{data_id}",
        f"/v1/models/{model_id}/data",
        f"/v1/models/{model_id}/images",
    ):
        assert_error(api.client.get(path, headers=api.headers), 404, "not_found")
    assert_error(api.client.get(image["url"]), 404, "not_found")
    adding = api.client.post(
        f"/v1/models/{model_id}/data", content=imagefactory.png(8, 8), headers=api.headers
    )
    assert_error(adding, 404, "not_found")
    # An image that never belonged to the model is unaffected.
    assert api.client.get(f"/v1/images/{unrelated['id']}", headers=api.headers).status_code == 200
