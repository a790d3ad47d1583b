"""API keys: header forms, 401s, revocation, account isolation, and the failure lock-out."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx2

from tests import imagefactory
from tests.conftest import Api


def assert_unauthenticated(response: httpx2.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {
        "error": {"code": "unauthenticated", "message": "Missing or invalid API key."}
    }
    assert response.headers["www-authenticate"] == "Bearer"


def create_model(api: Api, headers: dict[str, str]) -> str:
    response = api.client.post("/v1/models", json={"displayName": "m"}, headers=headers)
    assert response.status_code == 201, response.text
    model_id: str = response.json()["id"]
    return model_id


def test_bearer_and_x_api_key_headers_both_work(api: Api) -> None:
    model_id = create_model(api, {"Authorization": f"Bearer {api.key}"})

    for headers in (
        {"Authorization": f"Bearer {api.key}"},
        {"Authorization": f"bearer {api.key}"},
        {"X-API-Key": api.key},
        {"x-api-key": api.key},
    ):
        response = api.client.get(f"/v1/models/{model_id}", headers=headers)
        assert response.status_code == 200, (headers, response.text)


def test_both_headers_name_the_same_account(api: Api) -> None:
    via_x_api_key = create_model(api, {"X-API-Key": api.key})

    listing = api.client.get("/v1/models", headers={"Authorization": f"Bearer {api.key}"})

    assert [m["id"] for m in listing.json()["items"]] == [via_x_api_key]


def test_missing_or_invalid_keys_are_401(api: Api) -> None:
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer lf_not-a-real-key-at-all"},
        {"Authorization": "Bearer not-even-the-prefix"},
        {"Authorization": "Bearer lf_" + "a" * 300},
        {"X-API-Key": ""},
        {"X-API-Key": "lf_wrong"},
    ):
        assert_unauthenticated(api.client.get("/v1/models", headers=headers))


def test_the_real_key_under_another_scheme_is_401(api: Api) -> None:
    for scheme in ("Basic", "Token", "Key", "ApiKey"):
        headers = {"Authorization": f"{scheme} {api.key}"}
        assert_unauthenticated(api.client.get("/v1/models", headers=headers))


def test_a_near_miss_of_the_real_key_is_401(api: Api) -> None:
    tampered = api.key[:-1] + ("A" if api.key[-1] != "A" else "B")

    assert_unauthenticated(api.client.get("/v1/models", headers={"X-API-Key": tampered}))
    assert_unauthenticated(api.client.get("/v1/models", headers={"X-API-Key": api.key + "x"}))


def test_a_key_in_the_query_string_is_not_accepted(api: Api) -> None:
    for name in ("api_key", "apiKey", "apikey", "key", "token", "access_token", "X-API-Key"):
        assert_unauthenticated(api.client.get("/v1/models", params={name: api.key}))


def test_a_revoked_key_is_401_and_other_keys_keep_working(api: Api) -> None:
    account = api.container.keys.authenticate(api.key).account_id
    second = api.container.keys.create(name="second", account_id=account)
    model_id = create_model(api, api.headers)
    second_headers = {"Authorization": f"Bearer {second.plaintext}"}
    assert api.client.get(f"/v1/models/{model_id}", headers=second_headers).status_code == 200

    api.container.keys.revoke(second.key.id)

    assert_unauthenticated(api.client.get(f"/v1/models/{model_id}", headers=second_headers))
    assert_unauthenticated(api.client.get("/v1/models", headers={"X-API-Key": second.plaintext}))
    assert api.client.get(f"/v1/models/{model_id}", headers=api.headers).status_code == 200


def test_another_accounts_resources_answer_exactly_like_missing_ones(api: Api) -> None:
    model_id = create_model(api, api.headers)
    data_id = api.client.post(
        f"/v1/models/{model_id}/data", content=imagefactory.png(8, 8), headers=api.headers
    ).json()["dataId"]
    image_id = api.client.post(
        "/v1/images",
        files={"file": ("a.png", imagefactory.png(8, 8))},
        data={"data": json.dumps({"modelId": model_id, "type": "auxiliaryType"})},
        headers=api.headers,
    ).json()["id"]
    real = {"model": model_id, "data": data_id, "image": image_id}
    fake = {name: str(uuid.uuid4()) for name in real}
    intruder = api.new_account()
    png = imagefactory.png(4, 4)
    rename = json.dumps({"updatedDisplayName": "mine now"}).encode()
    requests: list[tuple[str, str, bytes | None]] = [
        ("GET", "/v1/models/{model}", None),
        ("PUT", "/v1/models/{model}", rename),
        ("DELETE", "/v1/models/{model}", None),
        ("GET", "/v1/models/{model}/data", None),
        ("POST", "/v1/models/{model}/data", png),
        ("GET", "/v1/models/{model}/data/{data}", None),
        ("PUT", "/v1/models/{model}/data/{data}", png),
        ("DELETE", "/v1/models/{model}/data/{data}", None),
        ("GET", "/v1/models/{model}/images", None),
        ("GET", "/v1/images/{image}", None),
        ("GET", "/v1/images/{image}/content", None),
        ("DELETE", "/v1/images/{image}", None),
        ("POST", "/v1/images?modelId={model}&type=modelInput", png),
    ]

    for method, template, body in requests:
        headers = intruder | ({"Content-Type": "application/json"} if body == rename else {})
        theirs = api.client.request(method, template.format(**real), content=body, headers=headers)
        missing = api.client.request(method, template.format(**fake), content=body, headers=headers)
        where = f"{method} {template}"
        assert theirs.status_code == missing.status_code == 404, where
        expected = missing.text
        for name in real:
            expected = expected.replace(fake[name], real[name])
        assert theirs.text == expected, where
        assert theirs.headers.get("content-length") == str(len(expected.encode())), where

    # And nothing of the owner's changed.
    model = api.client.get(f"/v1/models/{model_id}", headers=api.headers).json()
    assert model["displayName"] == "m"
    assert api.client.get(f"/v1/images/{image_id}", headers=api.headers).status_code == 200
    data = api.client.get(f"/v1/models/{model_id}/data/{data_id}", headers=api.headers).json()
    assert data["sha256"] == hashlib.sha256(imagefactory.png(8, 8)).hexdigest()  # not replaced
    assert api.client.get(f"/v1/models/{model_id}/images", headers=api.headers).json()["total"] == 2


def test_health_checks_need_no_key(api: Api) -> None:
    assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/readyz").status_code == 200
