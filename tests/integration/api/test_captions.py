"""Captions over HTTP: set at upload (every way in), changed with PATCH, written by caption runs
(``POST``/``GET /v1/models/{id}/captions``); and a training's trigger word, class word and
caption template. The rules themselves are tested at service level (tests/unit/services)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from loraforge.bootstrap import build_worker
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api, serving
from tests.integration.api.test_model_data import add_data, assert_error, create_model
from tests.ml_fakes import FakeCaptioner, FakeGenerator, FakeTrainer


@pytest.fixture
def captioning(settings: Settings) -> Iterator[Api]:
    """A server whose workers caption with a ``FakeCaptioner``."""
    with serving(settings, captioner=FakeCaptioner()) as api:
        yield api


def captions_of(api: Api, model_id: str) -> list[tuple[str, str]]:
    items = api.client.get(f"/v1/models/{model_id}/data", headers=api.headers).json()
    return [(i["caption"], i["captionSource"]) for i in reversed(items)]


def test_captions_given_at_upload_every_way_in(api: Api) -> None:
    model_id = create_model(api)
    png = imagefactory.png(32, 32)
    url = f"/v1/models/{model_id}/data"

    raw = api.client.post(url, params={"caption": "raw body"}, content=png, headers=api.headers)
    bare = api.client.post(url, content=png, headers=api.headers)
    image_query = {"modelId": model_id, "type": "modelInput", "caption": "query"}
    raw_image = api.client.post("/v1/images", params=image_query, content=png, headers=api.headers)
    data = {"modelId": model_id, "type": "modelInput", "caption": "multipart"}
    multipart = api.client.post(
        "/v1/images",
        files={"file": ("a.png", png, "image/png")},
        data={"data": json.dumps(data)},
        headers=api.headers,
    )
    inline = api.client.post(
        "/v1/images",
        json={
            "image": base64.b64encode(png).decode(),
            "modelId": model_id,
            "type": "modelInput",
            "caption": "  json\nbody ",
        },
        headers=api.headers,
    )

    for response in (raw, bare, raw_image, multipart, inline):
        assert response.status_code == 201, response.text
    assert inline.json()["caption"] == "json body"
    assert inline.json()["captionSource"] == "user"
    assert captions_of(api, model_id) == [
        ("raw body", "user"),
        ("", "none"),  # no captioning model here: it stays uncaptioned
        ("query", "user"),
        ("multipart", "user"),
        ("json body", "user"),
    ]


def test_a_caption_for_another_kind_or_too_long_is_a_422_naming_it(api: Api) -> None:
    model_id = create_model(api)
    png = imagefactory.png(32, 32)
    reference = api.client.post(
        "/v1/images",
        params={"modelId": model_id, "type": "auxiliaryType", "caption": "a pose"},
        content=png,
        headers=api.headers,
    )
    too_long = api.client.post(
        f"/v1/models/{model_id}/data",
        params={"caption": "x" * 1001},
        content=png,
        headers=api.headers,
    )

    for response in (reference, too_long):
        assert_error(response, 422, "invalid_request")
        assert response.json()["error"]["field"] == "caption"


def test_patch_an_image_s_caption(api: Api) -> None:
    model_id = create_model(api)
    data_id = add_data(api, model_id, imagefactory.png(32, 32), "image/png")

    response = api.client.patch(
        f"/v1/images/{data_id}", json={"caption": "a red dress"}, headers=api.headers
    )
    unknown = api.client.patch(
        f"/v1/images/{data_id}", json={"caption": "x", "captionSource": "auto"}, headers=api.headers
    )

    assert response.status_code == 200, response.text
    assert (response.json()["caption"], response.json()["captionSource"]) == (
        "a red dress",
        "user",
    )
    assert_error(unknown, 422, "invalid_request")
    assert unknown.json()["error"]["field"] == "captionSource"
    got = api.client.get(f"/v1/images/{data_id}", headers=api.headers).json()
    assert got["caption"] == "a red dress"


def test_patch_a_training_data_item_s_caption(api: Api) -> None:
    model_id = create_model(api)
    data_id = add_data(api, model_id, imagefactory.png(32, 32), "image/png")

    response = api.client.patch(
        f"/v1/models/{model_id}/data/{data_id}", json={"caption": ""}, headers=api.headers
    )
    elsewhere = api.client.patch(
        f"/v1/models/{create_model(api)}/data/{data_id}", json={"caption": "x"}, headers=api.headers
    )

    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["dataId"], body["caption"], body["captionSource"]) == (data_id, "", "user")
    assert_error(elsewhere, 404, "not_found")


def test_asking_for_captions_without_a_captioning_model_is_a_409(api: Api) -> None:
    model_id = create_model(api)

    response = api.client.post(f"/v1/models/{model_id}/captions", headers=api.headers)

    assert_error(response, 409, "captioning_unavailable")


def test_a_caption_run_is_queued_and_polled(captioning: Api) -> None:
    api = captioning
    model_id = create_model(api)
    add_data(api, model_id, imagefactory.png(32, 32), "image/png")  # queues its own run

    started = api.client.post(
        f"/v1/models/{model_id}/captions", json={"overwrite": True}, headers=api.headers
    )
    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["status"], run["overwrite"], run["progress"]["totalSteps"]) == ("queued", True, 1)

    worker = build_worker(api.container, trainer=FakeTrainer(), generator=FakeGenerator())
    while worker.run_once():
        pass
    polled = api.client.get(f"/v1/models/{model_id}/captions/{run['id']}", headers=api.headers)

    assert polled.status_code == 200, polled.text
    done = polled.json()
    assert (done["status"], done["captioned"], done["failed"]) == ("succeeded", 1, 0)
    assert done["progress"]["step"] == 1
    assert done["imageIds"] == run["imageIds"]
    [(caption, source)] = captions_of(api, model_id)
    assert caption.startswith("a picture of ")
    assert source == "auto"
    missing = api.client.get(f"/v1/models/{model_id}/captions/nope", headers=api.headers)
    assert_error(missing, 404, "not_found")


def test_a_training_takes_trigger_and_class_words_and_a_template(api: Api) -> None:
    model_id = create_model(api)
    add_data(api, model_id, imagefactory.png(32, 32), "image/png")
    url = f"/v1/models/{model_id}/trainings"

    started = api.client.post(
        url,
        json={
            "triggerWord": "ohwx",
            "classWord": "sneaker",
            "captionTemplate": "{trigger} {class}",
        },
        headers=api.headers,
    )
    assert started.status_code == 201, started.text
    training = api.client.get(f"{url}/{started.json()['trainingId']}", headers=api.headers).json()

    assert training["triggerWord"] == "ohwx"
    assert [i["caption"] for i in training["manifest"]["images"]] == ["ohwx sneaker"]
    for body, field in (
        ({"triggerWord": "two words"}, "triggerWord"),
        ({"classWord": "x" * 65}, "classWord"),
        ({"captionTemplate": "{name}"}, "captionTemplate"),
    ):
        refused = api.client.post(url, json=body, headers=api.headers)
        assert_error(refused, 422, "invalid_request")
        assert refused.json()["error"]["field"] == field
