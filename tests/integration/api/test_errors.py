"""One error body on the whole native API: ``{"error": {"code", "message", "field"?}}``.

The walk below provokes errors on every route the app serves, so a new route that answers
errors in another shape (or without a machine code) fails here without anyone listing it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import BaseModel

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.domain.entities import ImageFormat, ProcessedImage
from loraforge.settings import Settings
from tests import imagefactory
from tests.conftest import Api, serving

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PUBLIC = frozenset({"/healthz", "/readyz", "/v1/signing-key"})
PATH_PARAM = re.compile(r"\{[^}]+\}")


def assert_error_shape(response: httpx2.Response, status: int | set[int]) -> dict[str, Any]:
    wanted = {status} if isinstance(status, int) else status
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code in wanted, f"{where}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict), where
    assert set(body) == {"error"}, f"{where}: {body}"
    error = body["error"]
    assert isinstance(error, dict), where
    assert {"code", "message"} <= set(error) <= {"code", "message", "field"}, f"{where}: {body}"
    assert isinstance(error["code"], str), where
    assert SNAKE_CASE.match(error["code"]), f"{where}: code {error['code']!r}"
    assert isinstance(error["message"], str), where
    assert error["message"].strip(), where
    if "field" in error:
        assert isinstance(error["field"], str), where
        assert error["field"], where
    return error


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    route: APIRoute

    @property
    def public(self) -> bool:
        return self.path in PUBLIC

    @property
    def has_ids(self) -> bool:
        return bool(PATH_PARAM.search(self.path))

    def url(self) -> str:
        return PATH_PARAM.sub(lambda _: str(uuid.uuid4()), self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def native_endpoints(app: FastAPI) -> list[Endpoint]:
    """Every APIRoute the app serves under /v1, plus the health checks."""
    endpoints = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path
        if not isinstance(route, APIRoute) or path is None:
            continue
        if path.startswith("/v1/") or path in PUBLIC:
            endpoints += [Endpoint(m, path, route) for m in sorted(context.methods or ())]
    return endpoints


@pytest.fixture
def walk_api(settings: Settings) -> Iterator[Api]:
    """The walk fails authentication on purpose for every route: lift the lock-out."""
    with serving(settings.model_copy(update={"auth_max_failures": 10_000})) as api:
        yield api


def app_of(api: Api) -> FastAPI:
    app = api.client.app
    assert isinstance(app, FastAPI)
    return app


def test_the_walk_sees_every_native_route(walk_api: Api) -> None:
    seen = {str(e) for e in native_endpoints(app_of(walk_api))}

    # A sample of what the issue names: if the walk misses these it walks nothing useful.
    assert {
        "GET /healthz",
        "GET /readyz",
        "POST /v1/models",
        "GET /v1/models",
        "GET /v1/models/{modelId}",
        "PUT /v1/models/{modelId}",
        "DELETE /v1/models/{modelId}",
        "POST /v1/models/{modelId}/data",
        "GET /v1/models/{modelId}/data",
        "GET /v1/models/{modelId}/data/{dataId}",
        "PUT /v1/models/{modelId}/data/{dataId}",
        "DELETE /v1/models/{modelId}/data/{dataId}",
        "POST /v1/images",
        "GET /v1/images/{imageId}",
        "GET /v1/images/{imageId}/content",
        "DELETE /v1/images/{imageId}",
        "GET /v1/models/{modelId}/images",
    } <= seen


def test_every_route_answers_errors_in_the_one_shape(walk_api: Api) -> None:
    api = walk_api
    endpoints = native_endpoints(app_of(api))
    provoked: dict[str, list[int]] = {str(e): [] for e in endpoints}

    for endpoint in endpoints:
        for status in provoke(api, endpoint):
            provoked[str(endpoint)].append(status)

    assert all(provoked.values()), [name for name, errors in provoked.items() if not errors]
    for name, statuses in provoked.items():
        public = name.split(" ", 1)[1] in PUBLIC
        assert public or 401 in statuses, name
        assert 405 in statuses, name


def provoke(api: Api, endpoint: Endpoint) -> Iterator[int]:
    """Send requests that must fail on ``endpoint``; yield each checked error status."""
    client, method = api.client, endpoint.method
    json_body: dict[str, Any] = {}
    body_kwargs: dict[str, Any] = {"json": json_body} if method in ("POST", "PUT", "PATCH") else {}

    # A method the path does not serve (PATCH sets captions: no native path serves TRACE).
    assert_error_shape(client.request("TRACE", endpoint.url(), headers=api.headers), 405)
    yield 405

    if not endpoint.public:
        # No key, a wrong key, a key in the query string: 401.
        for headers, params in (
            ({}, {}),
            ({"Authorization": "Bearer lf_not-a-real-key"}, {}),
            ({}, {"api_key": api.key}),
        ):
            response = client.request(
                method, endpoint.url(), headers=headers, params=params, **body_kwargs
            )
            error = assert_error_shape(response, 401)
            assert error["code"] == "unauthenticated", endpoint
            yield 401

    if endpoint.has_ids:
        # Unknown ids: 404, unless the body is refused first (it is "{}", rarely valid).
        expected = {404} if method in ("GET", "DELETE") else {404, 422}
        response = client.request(method, endpoint.url(), headers=api.headers, **body_kwargs)
        assert_error_shape(response, expected)
        yield response.status_code

    if endpoint.route.body_field is not None:
        # A JSON body that does not parse (400) and one that is not an object (422).
        broken = client.request(
            method,
            endpoint.url(),
            content=b'{"unterminated": ',
            headers={**api.headers, "Content-Type": "application/json"},
        )
        assert_error_shape(broken, 400)
        yield 400
        wrong = client.request(method, endpoint.url(), json=[1, 2], headers=api.headers)
        assert_error_shape(wrong, 422)
        yield 422

    query_names = {p.alias for p in endpoint.route.dependant.query_params}
    if "pageSize" in query_names:
        response = client.request(
            method, endpoint.url(), params={"pageSize": 0}, headers=api.headers
        )
        assert_error_shape(response, {404, 422})
        yield response.status_code


def test_json_request_bodies_refuse_unknown_fields(walk_api: Api) -> None:
    """Clients cannot set server-owned fields: every JSON body model forbids extras."""
    bodies = [e for e in native_endpoints(app_of(walk_api)) if e.route.body_field is not None]
    assert bodies

    for endpoint in bodies:
        assert endpoint.route.body_field is not None
        model = endpoint.route.body_field.field_info.annotation
        assert isinstance(model, type), endpoint
        assert issubclass(model, BaseModel), endpoint
        assert model.model_config.get("extra") == "forbid", endpoint


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/models", {"displayName": "m", "ownerId": "x"}),
        ("POST", "/v1/images", {"image": "aGk=", "type": "auxiliaryType", "width": 9}),
    ],
)
def test_unknown_fields_are_422_naming_the_field(
    api: Api, method: str, path: str, body: dict[str, Any]
) -> None:
    response = api.client.request(method, path, json=body, headers=api.headers)

    error = assert_error_shape(response, 422)
    assert error["field"] in body
    assert error["field"] not in ("displayName", "image", "type")


def test_rename_with_unknown_fields_is_422(api: Api) -> None:
    model_id = api.client.post("/v1/models", json={"displayName": "m"}, headers=api.headers).json()[
        "id"
    ]

    response = api.client.put(
        f"/v1/models/{model_id}",
        json={"updatedDisplayName": "n", "id": "other"},
        headers=api.headers,
    )

    assert assert_error_shape(response, 422)["field"] == "id"


def test_unknown_routes_are_404_in_the_shape(api: Api) -> None:
    for path in ("/nope", "/v1/nope", "/v1/models/x/y/z", "/v2/models"):
        error = assert_error_shape(api.client.get(path, headers=api.headers), 404)
        assert error["code"] == "not_found", path


def test_wrong_methods_are_405_in_the_shape(api: Api) -> None:
    for method, path in (
        ("PUT", "/v1/models"),
        ("DELETE", "/v1/images"),
        ("POST", "/healthz"),
        ("PATCH", "/readyz"),
    ):
        response = api.client.request(method, path, headers=api.headers)
        assert assert_error_shape(response, 405)["code"] == "method_not_allowed"
        assert response.headers["allow"], path


def test_errors_of_the_service_layer_use_the_shape(api: Api) -> None:
    missing = str(uuid.uuid4())
    checks = [
        (api.client.get(f"/v1/models/{missing}", headers=api.headers), 404, "not_found"),
        (
            api.client.post(
                "/v1/images",
                params={"type": "auxiliaryType"},
                content=imagefactory.not_an_image(),
                headers=api.headers,
            ),
            415,
            "unsupported_format",
        ),
        (
            api.client.get("/v1/models", params={"pageNum": 0}, headers=api.headers),
            422,
            "invalid_request",
        ),
        (
            api.client.post(
                "/v1/images", json={"image": "!!", "type": "auxiliaryType"}, headers=api.headers
            ),
            400,
            "bad_request",
        ),
    ]

    for response, status, code in checks:
        assert assert_error_shape(response, status)["code"] == code


class ExplodingProcessor:
    def process(self, source: BinaryIO, *, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        raise RuntimeError("secret internal detail")

    def decode_cost(self, source: BinaryIO) -> int | None:
        return None


def test_unexpected_failures_are_500_in_the_shape_without_details(settings: Settings) -> None:
    container = build(settings, processor=ExplodingProcessor())
    try:
        app = create_app(container=container)
        with TestClient(app, raise_server_exceptions=False) as client:
            key = container.keys.create(name="t").plaintext
            response = client.post(
                "/v1/images",
                params={"type": "auxiliaryType"},
                content=imagefactory.png(4, 4),
                headers={"X-API-Key": key},
            )
    finally:
        container.close()

    error = assert_error_shape(response, 500)
    assert error["code"] == "internal_error"
    assert "secret" not in response.text
