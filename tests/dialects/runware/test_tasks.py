"""Runware imageUpload (seed 002) over HTTP POST and WebSocket, through the ASGI app."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pytest_httpserver import HTTPServer

from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.dialects.runware.translate import FORMATS
from loraforge.domain.entities import ImageKind
from loraforge.services.images import TaskKey, Upload
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api
from tests.dialects.runware.helpers import (
    PATH,
    UPLOAD_FIELDS,
    bare,
    data_uri,
    is_uuid4,
    runware_image_count,
    task_uuid,
    upload_task,
)
from tests.integration.test_concurrency import all_at_once, assert_blobs_match_rows

ACCEPTED = {  # seed 002: png, jpg/jpeg, webp, bmp, gif; as data URIs and as bare base64
    "png": data_uri(imagefactory.png(40, 30)),
    "jpeg": data_uri(imagefactory.jpeg(40, 30), "image/jpeg"),
    "webp": bare(imagefactory.webp(40, 30)),
    "bmp": data_uri(imagefactory.bmp(40, 30), "image/bmp"),
    "gif": bare(imagefactory.gif(40, 30)),
}


def post(api: Api, tasks: Any, headers: dict[str, str] | None = None) -> httpx2.Response:
    return api.client.post(PATH, json=tasks, headers=api.headers if headers is None else headers)


def only_error(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"}, body
    (error,) = body["errors"]
    assert isinstance(error, dict)
    return error


def test_http_uploads_every_accepted_format_and_inline_form(api: Api) -> None:
    tasks = [upload_task(image) for image in ACCEPTED.values()]

    response = post(api, tasks)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data"}
    assert [item["taskUUID"] for item in body["data"]] == [t["taskUUID"] for t in tasks]
    for item in body["data"]:
        assert set(item) == UPLOAD_FIELDS
        assert item["taskType"] == "imageUpload"
        assert is_uuid4(item["imageUUID"])
        shown = api.client.get(item["imageURL"])  # signed link: no headers
        assert shown.status_code == 200
        assert Image.open(io.BytesIO(shown.content)).size == (40, 30)
        native = api.client.get(f"/v1/images/{item['imageUUID']}", headers=api.headers).json()
        assert (native["type"], native["modelId"]) == ("auxiliaryType", None)


def test_the_stored_image_is_at_most_2048_on_its_long_side(api: Api) -> None:
    item = post(api, [upload_task(bare(imagefactory.png(3000, 1200)))]).json()["data"][0]

    shown = Image.open(io.BytesIO(api.client.get(item["imageURL"]).content))

    assert shown.size == (2048, 819)  # aspect ratio kept
    native = api.client.get(f"/v1/images/{item['imageUUID']}", headers=api.headers).json()
    assert (native["width"], native["height"]) == (3000, 1200)  # the original is kept too


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        (data_uri(imagefactory.heic(10, 10), "image/heic"), 415, "unsupportedFormat"),
        (bare(imagefactory.not_an_image()), 415, "unsupportedFormat"),
        (data_uri(imagefactory.svg(), "image/svg+xml"), 415, "unsupportedFormat"),
        ("data:image/png;base64,!!!!", 400, "badRequest"),
        ("not base64 at all", 400, "badRequest"),
        (bare(imagefactory.truncated_jpeg()), 422, "corruptImage"),
        ("http://127.0.0.1:1/image.png", 422, "fetchFailed"),
        ("", 400, "missingImage"),
    ],
    ids=["heic", "pdf", "svg", "bad-data-uri", "not-base64", "truncated", "blocked-url", "empty"],
)
def test_refused_images_answer_an_error_with_the_task_uuid(
    api: Api, image: str, status: int, code: str
) -> None:
    task = upload_task(image)

    error = only_error(post(api, [task]), status)

    assert error["code"] == code
    assert error["taskUUID"] == task["taskUUID"]
    assert error["taskType"] == "imageUpload"
    assert error["parameter"] == "image"
    assert runware_image_count(api.container) == 0


def test_malformed_tasks_are_errors_scoped_to_their_task(api: Api) -> None:
    good = upload_task(bare(imagefactory.png(8, 8)))
    tasks: list[Any] = [
        {"taskType": "imageInference", "taskUUID": "t-1"},
        {"taskType": "imageUpload", "taskUUID": "not-a-uuid", "image": good["image"]},
        {"taskType": "imageUpload", "image": good["image"]},
        "not an object",
        good,
    ]

    response = post(api, tasks)

    assert response.status_code == 200  # one task succeeded; the others are in errors
    body = response.json()
    assert [d["taskUUID"] for d in body["data"]] == [good["taskUUID"]]
    codes = [(e["code"], e.get("taskUUID")) for e in body["errors"]]
    assert codes == [
        ("unsupportedTaskType", "t-1"),
        ("invalidTaskUUID", "not-a-uuid"),
        ("invalidTaskUUID", None),
        ("invalidTask", None),
    ]
    assert body["errors"][0]["taskType"] == "imageInference"


def test_http_authentication(api: Api) -> None:
    task = upload_task(bare(imagefactory.png(8, 8)))

    bad = only_error(post(api, [task], headers={"Authorization": "Bearer lf_nope"}), 401)
    assert bad == {
        "code": "invalidApiKey",
        "message": "Invalid API key. Get one at https://my.runware.ai/signup",
        "parameter": "apiKey",
        "type": "string",
        "taskType": "authentication",
    }
    missing = only_error(post(api, [task], headers={}), 401)
    assert (missing["code"], missing["taskUUID"]) == ("missingApiKey", task["taskUUID"])

    in_band = post(api, [{"taskType": "authentication", "apiKey": api.key}, task], headers={})

    assert in_band.status_code == 200, in_band.text
    auth, uploaded = in_band.json()["data"]
    assert is_uuid4(auth["connectionSessionUUID"])
    assert uploaded["taskUUID"] == task["taskUUID"]


def test_http_frames_that_are_not_task_arrays(api: Api) -> None:
    not_json = api.client.post(PATH, content=b"[{", headers=api.headers)
    assert only_error(not_json, 400)["code"] == "badRequest"
    assert only_error(post(api, "ping"), 400)["code"] == "badRequest"
    assert only_error(post(api, [{}] * 101), 422)["code"] == "invalidRequest"
    pong = post(api, {"taskType": "ping", "ping": True})  # a lone object is one task
    assert pong.json() == {"data": [{"taskType": "ping", "pong": True}]}
    assert post(api, []).json() == {"data": []}
    assert api.client.get(PATH, headers=api.headers).status_code == 405
    assert "errors" in api.client.get(PATH, headers=api.headers).json()


def test_a_repeated_task_uuid_returns_the_first_image(api: Api) -> None:
    png = imagefactory.png(12, 12)
    task = upload_task(data_uri(png))

    first = post(api, [task]).json()["data"][0]
    again = post(api, [task]).json()["data"][0]
    same_bytes_other_form = post(api, [{**task, "image": bare(png)}]).json()["data"][0]

    assert again["imageUUID"] == first["imageUUID"] == same_bytes_other_form["imageUUID"]
    assert runware_image_count(api.container) == 1
    other_image = {**task, "image": bare(imagefactory.png(13, 12))}
    conflict = only_error(post(api, [other_image]), 409)
    assert (conflict["code"], conflict["taskUUID"]) == ("conflictTaskUUID", task["taskUUID"])
    other_account = {"Authorization": f"Bearer {api.container.keys.create(name='o').plaintext}"}
    theirs = post(api, [task], headers=other_account).json()["data"][0]
    assert theirs["imageUUID"] != first["imageUUID"]  # task ids are per account
    assert runware_image_count(api.container) == 2


def test_concurrent_duplicates_create_one_image(api: Api) -> None:
    task = upload_task(bare(imagefactory.jpeg(64, 40)))

    answers = all_at_once([lambda: post(api, [task]) for _ in range(6)])

    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["data"][0]["imageUUID"] for a in answers}) == 1
    assert runware_image_count(api.container) == 1
    assert_blobs_match_rows(api.container)


def test_concurrent_duplicates_in_the_service(container: Container) -> None:
    """Straight at the core: the receipt is written in the image's own transaction."""
    who = container.keys.authenticate(container.keys.create(name="s").plaintext)
    data = imagefactory.png(30, 20)
    key = TaskKey(scope="runware:imageUpload", task_id=task_uuid(), fingerprint="f")

    def ingest() -> Callable[[], str]:
        def run() -> str:
            upload = Upload(stream=io.BytesIO(data))
            image = container.images.ingest_once(
                who, key, upload, kind=ImageKind.REFERENCE, allowed=FORMATS, origin="runware"
            )
            return image.id

        return run

    ids = all_at_once([ingest() for _ in range(8)])

    assert len(set(ids)) == 1
    assert runware_image_count(container) == 1
    assert_blobs_match_rows(container)


def test_an_image_uuid_as_image_is_a_use_of_that_image(api: Api) -> None:
    first = post(api, [upload_task(bare(imagefactory.png(9, 9)))]).json()["data"][0]

    again = post(api, [upload_task(first["imageUUID"])]).json()["data"][0]

    assert again["imageUUID"] == first["imageUUID"]
    assert runware_image_count(api.container) == 1
    missing = only_error(post(api, [upload_task(task_uuid())]), 404)
    assert (missing["code"], missing["parameter"]) == ("notFound", "image")


def test_an_image_url_is_fetched(settings: Settings, httpserver: HTTPServer) -> None:
    png = imagefactory.png(50, 25)
    httpserver.expect_request("/pics/cat.png").respond_with_data(png, content_type="image/png")
    allowed = [f"{httpserver.host}:{httpserver.port}"]
    container = build(settings.model_copy(update={"fetch_allow_hosts": allowed}))
    try:
        with TestClient(create_app(container=container)) as client:
            api = Api(client, container, container.keys.create(name="u").plaintext)
            task = upload_task(httpserver.url_for("/pics/cat.png"))
            item = post(api, [task]).json()["data"][0]
            again = post(api, [task]).json()["data"][0]  # not fetched twice

            native = client.get(f"/v1/images/{item['imageUUID']}", headers=api.headers).json()
            assert (native["width"], native["height"], native["name"]) == (50, 25, "cat.png")
            assert again["imageUUID"] == item["imageUUID"]
            assert len(httpserver.log) == 1
    finally:
        container.close()


@pytest.fixture
def small_api(settings: Settings) -> Iterator[Api]:
    container = build(settings.model_copy(update={"max_request_bytes": 32 * 1024}))
    try:
        with TestClient(create_app(container=container)) as client:
            yield Api(client, container, container.keys.create(name="small").plaintext)
    finally:
        container.close()


def test_a_body_over_the_limit_gets_413_in_the_runware_shape(small_api: Api) -> None:
    big = [upload_task(bare(b"\0" * 40 * 1024))]

    error = only_error(post(small_api, big), 413)

    assert error["code"] == "payloadTooLarge"
    with small_api.client.websocket_connect(PATH) as ws:
        ws.send_json([{"taskType": "authentication", "apiKey": small_api.key}])
        assert "data" in ws.receive_json()
        ws.send_json(big)
        assert ws.receive_json()["errors"][0]["code"] == "payloadTooLarge"
        ws.send_json([{"taskType": "ping", "ping": True}])  # the connection lives on
        assert ws.receive_json() == {"data": [{"taskType": "ping", "pong": True}]}


def test_websocket_session(api: Api) -> None:
    with api.client.websocket_connect(PATH) as ws:
        ws.send_json([{"taskType": "ping", "ping": True}])  # answered before authentication
        assert ws.receive_json() == {"data": [{"taskType": "ping", "pong": True}]}
        early = upload_task(bare(imagefactory.png(8, 8)))
        ws.send_json([early])
        refused = ws.receive_json()["errors"][0]
        assert (refused["code"], refused["taskUUID"]) == ("missingApiKey", early["taskUUID"])

        ws.send_json([{"taskType": "authentication", "apiKey": "lf_wrong"}])
        assert ws.receive_json() == {
            "errors": [
                {
                    "code": "invalidApiKey",
                    "message": "Invalid API key. Get one at https://my.runware.ai/signup",
                    "parameter": "apiKey",
                    "type": "string",
                    "taskType": "authentication",
                }
            ]
        }
        session = task_uuid()
        ws.send_json(
            [{"taskType": "authentication", "apiKey": api.key, "connectionSessionUUID": session}]
        )
        assert ws.receive_json() == {
            "data": [{"taskType": "authentication", "connectionSessionUUID": session}]
        }
        several = [upload_task(bare(imagefactory.png(8 + i, 8))) for i in range(6)]  # > slots
        ws.send_json([*several, {"taskType": "nope", "taskUUID": "x"}])
        frames = [ws.receive_json() for _ in range(7)]
        answered = {
            item["taskUUID"]: item
            for frame in frames
            for item in frame.get("data", []) + frame.get("errors", [])
        }
        assert set(answered) == {*(t["taskUUID"] for t in several), "x"}
        assert answered["x"]["code"] == "unsupportedTaskType"
        for task in several:
            assert set(answered[task["taskUUID"]]) == UPLOAD_FIELDS
            assert answered[task["taskUUID"]]["imageURL"].startswith("http://testserver/v1/")
        ws.send_text("{not json")
        assert ws.receive_json()["errors"][0]["code"] == "badRequest"
        ws.send_json([{"taskType": "authentication", "apiKey": "lf_wrong"}])
        assert ws.receive_json()["errors"][0]["code"] == "invalidApiKey"
        ws.send_json([upload_task(bare(imagefactory.png(8, 8)))])
        assert ws.receive_json()["errors"][0]["code"] == "missingApiKey"
