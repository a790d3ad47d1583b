"""GET /v1/models/{modelId}/images, and the limit of images of each type per model."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.domain.entities import ALL_FORMATS, ImageKind
from loraforge.services.images import Upload
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api


class SteppingClock:
    """Advances by ``step`` on every reading; a zero step freezes time."""

    def __init__(self, step: timedelta) -> None:
        self._now = datetime(2030, 1, 1, tzinfo=UTC)
        self._step = step

    def now(self) -> datetime:
        self._now += self._step
        return self._now


def api_with(settings: Settings, clock: SteppingClock | None = None, **limits: int) -> Api:
    container = build(settings.model_copy(update=limits), clock=clock)
    client = TestClient(create_app(container=container))
    return Api(client=client, container=container, key=container.keys.create(name="t").plaintext)


@pytest.fixture
def ticking_api(settings: Settings) -> Iterator[Api]:
    api = api_with(settings, SteppingClock(timedelta(seconds=1)))
    try:
        with api.client:
            yield api
    finally:
        api.container.close()


@pytest.fixture
def frozen_api(settings: Settings) -> Iterator[Api]:
    api = api_with(settings, SteppingClock(timedelta(0)))
    try:
        with api.client:
            yield api
    finally:
        api.container.close()


@pytest.fixture
def small_limit_api(settings: Settings) -> Iterator[Api]:
    api = api_with(settings, max_images_per_type=2)
    try:
        with api.client:
            yield api
    finally:
        api.container.close()


def create_model(api: Api) -> str:
    response = api.client.post("/v1/models", json={"displayName": "m"}, headers=api.headers)
    assert response.status_code == 201, response.text
    model_id: str = response.json()["id"]
    return model_id


def upload(api: Api, model_id: str | None, type_: str, size: int = 8) -> httpx2.Response:
    params = {"type": type_} | ({"modelId": model_id} if model_id else {})
    return api.client.post(
        "/v1/images",
        params=params,
        content=imagefactory.png(size, size),
        headers={**api.headers, "Content-Type": "application/octet-stream"},
    )


def upload_id(api: Api, model_id: str | None, type_: str, size: int = 8) -> str:
    response = upload(api, model_id, type_, size)
    assert response.status_code == 201, response.text
    image_id: str = response.json()["id"]
    return image_id


def add_output(api: Api, model_id: str) -> str:
    """Generated images come from predictions; the service makes one directly here."""
    who = api.container.keys.authenticate(api.key)
    image = api.container.images.ingest(
        who,
        Upload(stream=io.BytesIO(imagefactory.png(12, 12)), name="out.png"),
        kind=ImageKind.OUTPUT,
        model_id=model_id,
        allowed=ALL_FORMATS,
    )
    return image.id


def listing(api: Api, model_id: str, **params: Any) -> dict[str, Any]:
    response = api.client.get(f"/v1/models/{model_id}/images", params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def assert_error(response: httpx2.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_image_type_filters(api: Api) -> None:
    model_id = create_model(api)
    other_model = create_model(api)
    data = api.client.post(
        f"/v1/models/{model_id}/data", content=imagefactory.jpeg(8, 8), headers=api.headers
    ).json()["dataId"]
    model_input = upload_id(api, model_id, "modelInput")
    reference = upload_id(api, model_id, "auxiliaryType")
    output = add_output(api, model_id)
    upload_id(api, other_model, "modelInput")
    upload_id(api, None, "auxiliaryType")

    everything = listing(api, model_id)
    explicit_all = listing(api, model_id, imageType="all")
    inputs = listing(api, model_id, imageType="input")
    references = listing(api, model_id, imageType="auxiliaryType")
    outputs = listing(api, model_id, imageType="output")

    assert set(ids(everything)) == {data, model_input, reference, output}
    assert (ids(explicit_all), explicit_all["total"]) == (ids(everything), 4)
    assert everything["total"] == 4
    assert set(ids(inputs)) == {data, model_input}
    assert inputs["total"] == 2
    assert {item["type"] for item in inputs["items"]} == {"modelInput"}
    assert (ids(references), references["total"]) == ([reference], 1)
    assert references["items"][0]["type"] == "auxiliaryType"
    assert (ids(outputs), outputs["total"]) == ([output], 1)
    assert outputs["items"][0]["type"] == "output"
    assert all(item["modelId"] == model_id for item in everything["items"])


def test_items_carry_the_image_metadata_and_working_links(api: Api) -> None:
    model_id = create_model(api)
    image_id = upload_id(api, model_id, "auxiliaryType", size=10)

    item = listing(api, model_id)["items"][0]

    single = api.client.get(f"/v1/images/{image_id}", headers=api.headers).json()
    assert {k: v for k, v in item.items() if not k.lower().endswith("url")} == {
        k: v for k, v in single.items() if not k.lower().endswith("url")
    }
    assert api.client.get(item["url"]).content == imagefactory.png(10, 10)


def test_newest_first_with_total_and_pages(ticking_api: Api) -> None:
    api = ticking_api
    model_id = create_model(api)
    uploaded = [upload_id(api, model_id, "auxiliaryType", size=4 + i) for i in range(5)]
    newest_first = list(reversed(uploaded))

    pages = [listing(api, model_id, pageNum=n, pageSize=2) for n in (1, 2, 3, 4)]

    assert [ids(p) for p in pages] == [newest_first[:2], newest_first[2:4], newest_first[4:], []]
    assert {p["total"] for p in pages} == {5}
    assert [(p["pageNum"], p["pageSize"]) for p in pages] == [(n, 2) for n in (1, 2, 3, 4)]
    assert ids(listing(api, model_id)) == newest_first


def test_order_is_stable_when_timestamps_tie(frozen_api: Api) -> None:
    api = frozen_api
    model_id = create_model(api)
    uploaded = {upload_id(api, model_id, "auxiliaryType", size=4 + i) for i in range(5)}

    first_pass = [ids(listing(api, model_id, pageNum=n, pageSize=2)) for n in (1, 2, 3)]
    second_pass = [ids(listing(api, model_id, pageNum=n, pageSize=2)) for n in (1, 2, 3)]

    flat = [image_id for page in first_pass for image_id in page]
    assert sorted(flat) == sorted(uploaded)  # every image exactly once across the pages
    assert first_pass == second_pass
    assert flat == ids(listing(api, model_id, pageSize=5))


def test_defaults_are_all_types_first_page_of_20(api: Api) -> None:
    model_id = create_model(api)

    body = listing(api, model_id)

    assert body == {"items": [], "total": 0, "pageNum": 1, "pageSize": 20}


def test_bad_parameters_are_422(api: Api) -> None:
    model_id = create_model(api)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"pageSize": 101}, "pageSize"),
        ({"pageSize": 0}, "pageSize"),
        ({"pageSize": -5}, "pageSize"),
        ({"pageNum": 0}, "pageNum"),
        ({"pageNum": -1}, "pageNum"),
        ({"pageNum": "first"}, "pageNum"),
        ({"imageType": "inputs"}, "imageType"),
        ({"imageType": "modelInput"}, "imageType"),
    ]
    for params, field in cases:
        response = api.client.get(
            f"/v1/models/{model_id}/images", params=params, headers=api.headers
        )
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["field"] == field, params


def test_page_size_bound_follows_the_setting(settings: Settings) -> None:
    api = api_with(settings, max_page_size=5)
    try:
        with api.client:
            model_id = create_model(api)
            path = f"/v1/models/{model_id}/images"
            ok = api.client.get(path, params={"pageSize": 5}, headers=api.headers)
            too_big = api.client.get(path, params={"pageSize": 6}, headers=api.headers)
    finally:
        api.container.close()

    assert ok.status_code == 200
    assert_error(too_big, 422, "invalid_request")


def test_unknown_and_deleted_models_are_404(api: Api) -> None:
    model_id = create_model(api)
    assert api.client.delete(f"/v1/models/{model_id}", headers=api.headers).status_code == 204

    for missing in (model_id, "00000000-0000-4000-8000-000000000000"):
        response = api.client.get(f"/v1/models/{missing}/images", headers=api.headers)
        assert_error(response, 404, "not_found")


def test_the_21st_image_of_a_type_is_409_and_the_other_type_has_room(api: Api) -> None:
    model_id = create_model(api)
    for _ in range(20):
        upload_id(api, model_id, "modelInput")

    over = upload(api, model_id, "modelInput")

    assert_error(over, 409, "limit_reached")
    assert upload(api, model_id, "auxiliaryType").status_code == 201
    assert listing(api, model_id, imageType="input")["total"] == 20
    assert listing(api, model_id, imageType="auxiliaryType")["total"] == 1


def test_each_type_has_its_own_limit(small_limit_api: Api) -> None:
    api = small_limit_api
    model_id = create_model(api)
    upload_id(api, model_id, "auxiliaryType")
    upload_id(api, model_id, "auxiliaryType")

    assert_error(upload(api, model_id, "auxiliaryType"), 409, "limit_reached")
    upload_id(api, model_id, "modelInput")
    upload_id(api, model_id, "modelInput")
    assert_error(upload(api, model_id, "modelInput"), 409, "limit_reached")
    assert listing(api, model_id)["total"] == 4


def test_training_data_counts_towards_the_model_input_limit(small_limit_api: Api) -> None:
    api = small_limit_api
    model_id = create_model(api)
    upload_id(api, model_id, "modelInput")
    data = api.client.post(
        f"/v1/models/{model_id}/data", content=imagefactory.png(8, 8), headers=api.headers
    )
    assert data.status_code == 201, data.text

    through_data = api.client.post(
        f"/v1/models/{model_id}/data", content=imagefactory.png(8, 8), headers=api.headers
    )
    through_images = upload(api, model_id, "modelInput")

    assert_error(through_data, 409, "limit_reached")
    assert_error(through_images, 409, "limit_reached")
    assert listing(api, model_id, imageType="input")["total"] == 2


def test_the_limit_is_per_model_and_frees_up_on_delete(small_limit_api: Api) -> None:
    api = small_limit_api
    model_id = create_model(api)
    other_model = create_model(api)
    first = upload_id(api, model_id, "modelInput")
    upload_id(api, model_id, "modelInput")
    assert_error(upload(api, model_id, "modelInput"), 409, "limit_reached")

    assert upload(api, other_model, "modelInput").status_code == 201
    assert api.client.delete(f"/v1/images/{first}", headers=api.headers).status_code == 204
    assert upload(api, model_id, "modelInput").status_code == 201
    assert_error(upload(api, model_id, "modelInput"), 409, "limit_reached")


def test_images_without_a_model_and_outputs_are_not_limited(small_limit_api: Api) -> None:
    api = small_limit_api
    model_id = create_model(api)
    for _ in range(3):
        upload_id(api, None, "auxiliaryType")
        add_output(api, model_id)

    assert listing(api, model_id, imageType="output")["total"] == 3
    assert upload(api, model_id, "auxiliaryType").status_code == 201
