"""The Scenario routes on the wire: auth forms, error bodies, statuses and retry advice."""

from __future__ import annotations

import base64

import pytest

from tests.dialects.scenario.conftest import Wire
from tests.dialects.scenario.helpers import png_data_url


def _basic(key: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_basic_with_the_key_twice_and_bearer_are_accepted(wire: Wire) -> None:
    for headers in (_basic(wire.key, wire.key), wire.headers):
        answer = wire.client.get(wire.url("/models"), headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"models": [], "nextPaginationToken": None}


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Token x", "Bearer "],
)
def test_missing_or_malformed_auth_is_401(wire: Wire, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = wire.client.get(wire.url("/models"), headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {
        "apiError": "unauthenticated",
        "message": "Missing or invalid API key.",
    }
    assert answer.headers["x-should-retry"] == "false"


def test_a_secret_other_than_the_key_is_401(wire: Wire) -> None:
    answer = wire.client.get(wire.url("/models"), headers=_basic(wire.key, "something-else"))
    assert answer.status_code == 401


def test_error_shapes_and_retry_advice(wire: Wire) -> None:
    h = wire.headers
    cases = [
        (wire.client.get(wire.url("/nowhere"), headers=h), 404, "not_found"),
        (wire.client.patch(wire.url("/models"), headers=h), 405, "method_not_allowed"),
        (wire.client.get(wire.url("/models/abc"), headers=h), 404, "not_found"),  # no prefix
        (
            wire.client.post(
                wire.url("/models"), content=b"{", headers={**h, "Content-Type": "application/json"}
            ),
            400,
            "bad_request",
        ),
        (
            wire.client.post(wire.url("/models"), json={"type": "not-a-type"}, headers=h),
            422,
            "invalid_request",
        ),
        (
            wire.client.post(wire.url("/models/model_x/train/action"), json={}, headers=h),
            422,
            "invalid_request",
        ),
    ]
    for answer, status, code in cases:
        assert answer.status_code == status, answer.text
        assert answer.json()["apiError"] == code
        assert set(answer.json()) == {"apiError", "message"}
        assert answer.headers["x-should-retry"] == "false"


def test_delete_with_a_json_content_type_and_no_body(wire: Wire) -> None:
    created = wire.client.post(wire.url("/models"), json={"name": "d"}, headers=wire.headers)
    model_id = created.json()["model"]["id"]
    answer = wire.client.delete(
        wire.url(f"/models/{model_id}"),
        headers={**wire.headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    assert answer.json() == {}


def test_dry_run_is_refused_and_starts_nothing(wire: Wire) -> None:
    model_id = wire.client.post(wire.url("/models"), json={}, headers=wire.headers).json()["model"][
        "id"
    ]
    wire.client.post(
        wire.url(f"/models/{model_id}/training-images"),
        json={"data": png_data_url(), "name": "a.png"},
        headers=wire.headers,
    )
    answer = wire.client.put(
        wire.url(f"/models/{model_id}/train"),
        params={"dryRun": "true", "trainingImagesCount": "1"},
        json={},
        headers=wire.headers,
    )
    assert answer.status_code == 400
    assert answer.json()["apiError"] == "dry_run_unsupported"
    model = wire.client.get(wire.url(f"/models/{model_id}"), headers=wire.headers).json()
    assert model["model"]["status"] == "new"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),  # none of data, assetId, assetIds
        ({"assetIds": ["asset_a"], "data": "x"}, 400),
        ({"assetIds": []}, 422),
        ({"assetIds": [f"asset_{n}" for n in range(11)]}, 422),  # at most 10
        ({"data": "data:image/svg+xml;base64,PHN2Zz4=", "name": "x.svg"}, 415),
        ({"data": "data:image/png;base64,****", "name": "x.png"}, 400),
    ],
)
def test_bad_training_image_bodies(wire: Wire, body: dict[str, object], status: int) -> None:
    model_id = wire.client.post(wire.url("/models"), json={}, headers=wire.headers).json()["model"][
        "id"
    ]
    answer = wire.client.post(
        wire.url(f"/models/{model_id}/training-images"), json=body, headers=wire.headers
    )
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"apiError", "message"}
