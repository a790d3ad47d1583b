"""Input that used to answer 500 (issue 10.4) gets each wire format's 4xx instead.

Paging past a 64-bit offset, JSON nested deeper than the parser's recursion limit, booleans in
integer fields, empty names, and methods a path does not serve, on the native API and on every
dialect. Each dialect answers in its own error shape.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx2
import pytest

from tests import imagefactory
from tests.conftest import Api

HUGE = "999999999999999999"  # (HUGE - 1) * pageSize passes 2**63
DEEP = b"[" * 100_000  # json.loads raises RecursionError long before the end


def model_id(api: Api) -> str:
    created = api.client.post("/v1/models", json={"displayName": "m"}, headers=api.headers)
    assert created.status_code == 201, created.text
    value: str = created.json()["id"]
    return value


def field_of(response: httpx2.Response) -> str | None:
    """The field an error names, in each wire format's shape."""
    body = response.json()
    if "error" in body:  # native
        field: str | None = body["error"].get("field")
        return field
    if "err" in body:  # PhotoGPT names the field in the message only
        return next(f for f in ("pageNum", "pageSize") if f in body["message"])
    raise AssertionError(body)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/models", {"pageNum": HUGE}, "pageNum"),
        ("/v1/models", {"pageNum": "1000000001"}, "pageNum"),
        ("/v1/models", {"pageNum": HUGE, "pageSize": "100"}, "pageNum"),
        ("/v1/models/{model}/images", {"pageNum": HUGE}, "pageNum"),
        ("/compat/photogpt/models", {"pageNum": HUGE}, "pageNum"),
        ("/compat/photogpt/models/{model}/images", {"pageNum": HUGE}, "pageNum"),
    ],
)
def test_a_page_past_any_offset_is_a_422_naming_the_field(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    response = api.client.get(path.format(model=model_id(api)), params=params, headers=api.headers)

    assert response.status_code == 422, response.text
    assert field_of(response) == field


def test_the_last_page_allowed_answers_empty(api: Api) -> None:
    response = api.client.get(
        "/v1/models", params={"pageNum": "1000000000", "pageSize": "100"}, headers=api.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


def test_a_scenario_cursor_past_any_offset_is_a_400(api: Api) -> None:
    token = base64.urlsafe_b64encode(f"offset:{2**64}".encode()).decode().rstrip("=")

    response = api.client.get(
        "/compat/scenario/v1/models", params={"paginationToken": token}, headers=api.headers
    )

    assert response.status_code == 400, response.text
    assert response.json()["apiError"] == "bad_request"


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/images", "native"),
        ("/v1/models", "native"),
        ("/v1/models/{model}/trainings", "native"),
        ("/v1/predictions", "native"),
        ("/compat/runware/v1", "runware"),
        ("/compat/photogpt/models", "photogpt"),
        ("/compat/scenario/v1/models", "scenario"),
        ("/compat/scenario/v1/assets", "scenario"),
        ("/compat/scenario/v1/models/model_{model}/training-images/pairs", "scenario"),
    ],
)
def test_deeply_nested_json_is_a_400_in_each_format(api: Api, path: str, shape: str) -> None:
    url = path.format(model=model_id(api))
    method = "PUT" if url.endswith("/pairs") else "POST"
    headers = {**api.headers, "Content-Type": "application/json"}

    response = api.client.request(method, url, content=DEEP, headers=headers)

    assert response.status_code == 400, response.text
    body = response.json()
    code = {
        "native": lambda: body["error"]["code"],
        "runware": lambda: body["errors"][0]["code"],
        "photogpt": lambda: body["err"],
        "scenario": lambda: body["apiError"],
    }[shape]()
    assert code in ("bad_request", "badRequest")


def test_deeply_nested_json_in_a_multipart_data_part_is_a_400(api: Api) -> None:
    files = {"file": ("a.png", imagefactory.png(8, 8), "image/png")}
    for path in ("/v1/images", "/compat/photogpt/images/upload"):
        response = api.client.post(
            path, files=files, data={"data": "[" * 60_000}, headers=api.headers
        )

        assert response.status_code == 400, (path, response.text)


def test_a_deeply_nested_websocket_frame_gets_an_error_frame_and_the_socket_lives(
    api: Api,
) -> None:
    with api.client.websocket_connect("/compat/runware/v1") as ws:
        ws.send_text(DEEP.decode())
        error = ws.receive_json()["errors"][0]
        ws.send_json([{"taskType": "ping", "ping": True}])
        pong = ws.receive_json()

    assert error["code"] == "badRequest"
    assert pong == {"data": [{"taskType": "ping", "pong": True}]}


@pytest.mark.parametrize(
    "body",
    [
        {"trainingStrength": True},
        {"trainingStrength": "7"},
        {"trainingStrength": 7.0},
    ],
)
def test_training_strength_must_be_an_integer(api: Api, body: dict[str, Any]) -> None:
    response = api.client.post(
        f"/v1/models/{model_id(api)}/trainings", json=body, headers=api.headers
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "trainingStrength"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_images": True}, "num_images"),
        ({"num_inference_steps": False}, "num_inference_steps"),
        ({"seed": True}, "seed"),
        ({"image_size": {"width": True, "height": 512}}, "image_size.width"),
        ({"guidance_scale": True}, "guidance_scale"),
    ],
)
def test_prediction_numbers_refuse_booleans(api: Api, change: dict[str, Any], field: str) -> None:
    body = {
        "scaleConfigs": {"1": {"scale": 1, "modelId": "m", "trainingId": "t"}},
        "prompt": "p",
        **change,
    }

    response = api.client.post("/v1/predictions", json=body, headers=api.headers)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize("name", ["", "   "])
def test_names_must_not_be_empty(api: Api, name: str) -> None:
    model = model_id(api)
    png = "data:image/png;base64," + base64.b64encode(imagefactory.png(8, 8)).decode()
    scenario = "/compat/scenario/v1"
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/models", {"displayName": name}),
        ("PUT", f"/v1/models/{model}", {"updatedDisplayName": name}),
        ("POST", "/compat/photogpt/models", {"name": name}),
        ("POST", f"{scenario}/models", {"name": name}),
        ("PUT", f"{scenario}/models/model_{model}", {"name": name}),
        ("POST", f"{scenario}/models/model_{model}/training-images", {"data": png, "name": name}),
        ("POST", f"{scenario}/assets", {"image": png, "name": name}),
    ]
    for method, path, body in requests:
        response = api.client.request(method, path, json=body, headers=api.headers)

        assert response.status_code == 422, (method, path, response.text)


def test_scenario_numbers_refuse_booleans(api: Api) -> None:
    path = f"/compat/scenario/v1/models/model_{model_id(api)}"
    for parameters in ({"maxTrainSteps": True}, {"rank": "4"}, {"learningRate": True}):
        response = api.client.put(path, json={"parameters": parameters}, headers=api.headers)

        assert response.status_code == 422, (parameters, response.text)
        assert response.json()["apiError"] == "invalid_request"


def test_photogpt_age_refuses_a_boolean(api: Api) -> None:
    response = api.client.post(
        "/compat/photogpt/models", json={"name": "Ann", "age": True}, headers=api.headers
    )

    assert response.status_code == 422, response.text


def test_names_are_stored_stripped(api: Api) -> None:
    created = api.client.post("/v1/models", json={"displayName": "  Ann  "}, headers=api.headers)

    assert created.status_code == 201, created.text
    assert created.json()["displayName"] == "Ann"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/models", "GET, POST"),
        ("PATCH", "/v1/models/x", "DELETE, GET, PUT"),
        ("POST", "/v1/images/x", "DELETE, GET, PATCH"),
        ("POST", "/v1/models/x/data/y", "DELETE, GET, PATCH, PUT"),
        ("PUT", "/compat/photogpt/models", "GET, POST"),
        ("PATCH", "/compat/scenario/v1/models/x", "DELETE, GET, PUT"),
        ("GET", "/compat/runware/v1", "POST"),
    ],
)
def test_a_405_lists_every_allowed_method(api: Api, method: str, path: str, allowed: str) -> None:
    response = api.client.request(method, path, headers=api.headers)

    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed


def test_a_png_without_iend_is_a_422_corrupt_image(api: Api) -> None:
    data = imagefactory.png(32, 32)[:-12]  # IEND is the last 12 bytes

    response = api.client.post(
        "/v1/images", params={"type": "auxiliaryType"}, content=data, headers=api.headers
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "corrupt_image"


LONE_SURROGATE = b'[{"taskType": "imageUpload", "taskUUID": "\\ud800", "image": "x"}]'


def test_a_lone_surrogate_is_a_400_not_an_unencodable_answer(api: Api) -> None:
    headers = {**api.headers, "Content-Type": "application/json"}

    response = api.client.post("/compat/runware/v1", content=LONE_SURROGATE, headers=headers)
    paired = api.client.post(
        "/compat/runware/v1",
        content=b'[{"taskType": "ping", "ping": true, "taskUUID": "\\ud83d\\ude00"}]',
        headers=headers,
    )

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "badRequest"
    assert paired.status_code == 200, paired.text  # an escaped pair is text


def test_a_lone_surrogate_frame_gets_an_error_frame_and_the_socket_lives(api: Api) -> None:
    with api.client.websocket_connect("/compat/runware/v1") as ws:
        ws.send_text(LONE_SURROGATE.decode())
        error = ws.receive_json()["errors"][0]
        ws.send_json([{"taskType": "ping", "ping": True}])
        pong = ws.receive_json()

    assert error["code"] == "badRequest"
    assert pong == {"data": [{"taskType": "ping", "pong": True}]}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/%00",
        "/v1/images/a%00",
        "/v1/predictions/%00",
        "/compat/photogpt/models/%00",
        "/compat/scenario/v1/models/model_%00",
        "/compat/scenario/v1/jobs/job_%00",
    ],
)
def test_a_nul_in_an_id_is_a_400_on_every_database(api: Api, path: str) -> None:
    # PostgreSQL cannot hold NUL in text: psycopg failed the query (500); SQLite answered 404.
    response = api.client.get(path, headers=api.headers)

    assert response.status_code == 400, response.text


def test_a_nul_in_a_body_id_is_a_400_on_every_database(api: Api) -> None:
    native = api.client.post(
        "/v1/images",
        json={"image": "https://example.com/a.png", "modelId": "\x00", "type": "modelInput"},
        headers=api.headers,
    )
    photogpt = api.client.post(
        "/compat/photogpt/models", json={"id": "\x00", "name": "a"}, headers=api.headers
    )

    assert native.status_code == 400, native.text
    assert photogpt.status_code == 400, photogpt.text
    assert photogpt.json()["err"] == "bad_request"
