"""/openapi.json documents every native route with its schemas; /docs, /healthz, /readyz."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.services.paging import MAX_PAGE_NUM
from loraforge.settings import Settings
from tests.conftest import Api

PUBLIC = frozenset({"/healthz", "/readyz"})


@pytest.fixture
def spec(api: Api) -> dict[str, Any]:
    response = api.client.get("/openapi.json")  # no key needed
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def native_operations(api: Api) -> list[tuple[str, str, APIRoute]]:
    app = api.client.app
    assert isinstance(app, FastAPI)
    found = []
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path
        if isinstance(route, APIRoute) and path and (path.startswith("/v1/") or path in PUBLIC):
            found += [(m.lower(), path, route) for m in sorted(context.methods or ())]
    assert found
    return found


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def schema_of(spec: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def test_every_native_route_is_in_the_spec(api: Api, spec: dict[str, Any]) -> None:
    for method, path, _ in native_operations(api):
        assert path in spec["paths"], path
        operation = spec["paths"][path].get(method)
        assert operation is not None, f"{method} {path}"
        assert operation.get("operationId"), f"{method} {path}"
        assert any(code.startswith("2") for code in operation["responses"]), f"{method} {path}"


def test_json_responses_have_schemas(api: Api, spec: dict[str, Any]) -> None:
    for method, path, route in native_operations(api):
        if route.response_model is None:
            continue
        operation = spec["paths"][path][method]
        success = [r for code, r in operation["responses"].items() if code.startswith("2")]
        assert any("schema" in r.get("content", {}).get("application/json", {}) for r in success), (
            f"{method} {path}"
        )


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    names = set(spec["components"]["schemas"])

    for ref in set(refs(spec)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in names, ref


def test_errors_are_documented_in_the_one_shape(api: Api, spec: dict[str, Any]) -> None:
    error_ref = "#/components/schemas/ErrorBody"
    error = schema_of(spec, "ErrorBody")
    assert error["required"] == ["error"]
    detail = schema_of(spec, "ErrorDetail")
    assert set(detail["properties"]) == {"code", "message", "field"}
    assert set(detail["required"]) == {"code", "message"}
    # FastAPI's default {"detail": [...]} shape is never served, so it must not be documented.
    assert "HTTPValidationError" not in spec["components"]["schemas"]

    for method, path, _ in native_operations(api):
        responses = spec["paths"][path][method]["responses"]
        errors = {code: r for code, r in responses.items() if not code.startswith(("2", "3"))}
        assert errors, f"{method} {path} documents no error response"
        for code, response in errors.items():
            content = response.get("content", {})
            assert content, f"{method} {path} {code}"
            assert list(refs(content)) == [error_ref], f"{method} {path} {code}: {content}"


def test_request_bodies_are_documented(spec: dict[str, Any]) -> None:
    paths = spec["paths"]

    def body(path: str, method: str) -> dict[str, Any]:
        content: dict[str, Any] = paths[path][method]["requestBody"]["content"]
        return content

    assert list(refs(body("/v1/models", "post"))) == ["#/components/schemas/ModelCreate"]
    assert list(refs(body("/v1/models/{modelId}", "put"))) == ["#/components/schemas/ModelRename"]
    for method in ("post", "put"):
        data = body("/v1/models/{modelId}/data" + ("/{dataId}" if method == "put" else ""), method)
        assert {"image/webp", "image/png", "image/jpeg"} <= set(data)
        assert data["image/png"]["schema"] == {"type": "string", "format": "binary"}
    upload = body("/v1/images", "post")
    assert {"multipart/form-data", "application/json", "application/octet-stream"} <= set(upload)
    assert set(upload["multipart/form-data"]["schema"]["properties"]) == {"file", "data"}
    assert {"image", "modelId", "type"} <= set(upload["application/json"]["schema"]["properties"])


def test_schemas_use_the_seed_field_names(spec: dict[str, Any]) -> None:
    assert {"displayName", "customModelType"} <= set(schema_of(spec, "ModelCreate")["properties"])
    assert schema_of(spec, "ModelCreate")["required"] == ["displayName"]
    assert set(schema_of(spec, "ModelRename")["properties"]) == {"updatedDisplayName"}
    assert {"id", "displayName", "customModelType"} <= set(
        schema_of(spec, "ModelRead")["properties"]
    )
    assert set(schema_of(spec, "DataCreated")["properties"]) == {"dataId", "warnings"}
    assert "dataUrl" in schema_of(spec, "TrainingDataContent")["properties"]
    assert {"items", "total", "pageNum", "pageSize"} <= set(
        schema_of(spec, "ImagePage")["properties"]
    )
    image = set(schema_of(spec, "ImageRead")["properties"])
    assert {
        "id",
        "url",
        "modelId",
        "type",
        "format",
        "width",
        "height",
        "bytes",
        "sha256",
        "name",
        "createdAt",
        "lastUsedAt",
    } <= image
    for name in ("ModelCreate", "ModelRename"):
        assert schema_of(spec, name)["additionalProperties"] is False, name


def test_listing_parameters_are_documented(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/v1/models/{modelId}/images"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}

    assert set(params) == {"modelId", "imageType", "pageNum", "pageSize"}
    assert params["imageType"]["schema"]["enum"] == ["all", "input", "output", "auxiliaryType"]
    assert params["pageNum"]["schema"]["type"] == "integer"
    assert params["pageSize"]["schema"]["type"] == "integer"
    listing = {p["name"] for p in spec["paths"]["/v1/models"]["get"]["parameters"]}
    assert listing == {"pageNum", "pageSize"}


def test_docs_page_answers(api: Api) -> None:
    response = api.client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


def test_healthz(api: Api) -> None:
    response = api.client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_blob_store(api: Api) -> None:
    response = api.client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "blobStore": "ok"}


def test_readyz_is_503_while_the_blob_store_is_broken(api: Api, settings: Settings) -> None:
    scratch = settings.data_dir / "blobs" / "tmp"
    shutil.rmtree(scratch)

    broken = api.client.get("/readyz")
    scratch.mkdir()
    recovered = api.client.get("/readyz")

    assert broken.status_code == 503
    assert broken.json()["error"]["code"] == "unavailable"
    assert broken.json()["error"]["message"]
    assert int(broken.headers["retry-after"]) > 0
    assert recovered.status_code == 200


def test_paging_bounds_are_published_with_the_configured_maximum(settings: Settings) -> None:
    container = build(settings.model_copy(update={"max_page_size": 7}))
    try:
        with TestClient(create_app(container=container)) as client:
            native = client.get("/openapi.json").json()
        photogpt = mounted_app(create_app(container=container), "/compat/photogpt").openapi()
    finally:
        container.close()

    for spec, path in (
        (native, "/v1/models"),
        (native, "/v1/models/{modelId}/images"),
        (photogpt, "/models"),
        (photogpt, "/models/{modelID}/images"),
    ):
        params = {p["name"]: p["schema"] for p in spec["paths"][path]["get"]["parameters"]}
        assert (params["pageSize"]["minimum"], params["pageSize"]["maximum"]) == (1, 7), path
        assert (params["pageNum"]["minimum"], params["pageNum"]["maximum"]) == (1, MAX_PAGE_NUM)


def test_routes_document_the_statuses_they_answer(spec: dict[str, Any]) -> None:
    def statuses(path: str, method: str) -> set[str]:
        return set(spec["paths"][path][method]["responses"])

    for path, method in (
        ("/v1/images", "post"),
        ("/v1/models/{modelId}/data", "post"),
        ("/v1/models/{modelId}/data/{dataId}", "put"),
    ):
        assert {"400", "401", "404", "413", "415", "422", "429", "503"} <= statuses(path, method)
    assert {"404", "409"} <= statuses("/v1/models/{modelId}/trainings", "post")
    assert {"401", "404", "429", "503"} <= statuses("/v1/models/{modelId}", "get")
    assert "422" in statuses("/v1/models", "get")
    assert "401" not in statuses("/healthz", "get")


def test_bounds_of_bodies_are_published(spec: dict[str, Any]) -> None:
    training = schema_of(spec, "TrainingCreate")["properties"]["trainingStrength"]
    assert (training["type"], training["minimum"], training["maximum"]) == ("integer", 0, 10)
    name = schema_of(spec, "ModelCreate")["properties"]["displayName"]
    assert (name["minLength"], name["maxLength"]) == (1, 200)


def mounted_app(app: FastAPI, prefix: str) -> FastAPI:
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == prefix)
    assert isinstance(mount.app, FastAPI)
    return mount.app
