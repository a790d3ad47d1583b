"""A zero-trust schema pass: schemathesis generates requests from each wire format's OpenAPI
document (the native ``/openapi.json`` and each dialect sub-app's own document) and sends them
with a real key. Every answer must be below 500, whatever the input.

Bounded and repeatable: ``derandomize`` fixes the examples, a fixed number per operation (valid
and schema-violating ones mixed), no example database. Half of the examples put real ids (a
model with a training image, a queued training) into the path, so bodies and parameters reach
the services instead of stopping at 404 (never for DELETE, which would leave the later
operations no model). Event streams are left out: a stream of a queued training only ends
when it does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from starlette.routing import Mount

from loraforge.api.app import create_app
from loraforge.bootstrap import Container
from tests import imagefactory

EXAMPLES_PER_OPERATION = 25


@dataclass
class Target:
    app: FastAPI
    headers: dict[str, str]
    ids: dict[str, str]


@pytest.fixture
def target(container: Container) -> Iterator[Target]:
    app = create_app(container=container)
    key = container.keys.create(name="fuzz").plaintext
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        model = client.post("/v1/models", json={"displayName": "m"}, headers=headers).json()["id"]
        data = client.post(
            f"/v1/models/{model}/data", content=imagefactory.png(32, 32), headers=headers
        ).json()["dataId"]
        training = client.post(f"/v1/models/{model}/trainings", json={}, headers=headers)
        ids = {
            "modelId": model,
            "modelID": model,
            "dataId": data,
            "imageId": data,
            "trainingId": training.json()["trainingId"],
        }
        yield Target(app=app, headers=headers, ids=ids)


def sub_app(app: FastAPI, prefix: str) -> FastAPI:
    for route in app.routes:
        if isinstance(route, Mount) and route.path == prefix:
            mounted = route.app
            # Scenario's sub-app is wrapped in its retry-advice middleware.
            inner = getattr(mounted, "app", mounted)
            assert isinstance(inner, FastAPI)
            return inner
    raise AssertionError(f"nothing mounted at {prefix}")


SCENARIO_IDS = {
    "modelId": "model_{modelId}",
    "trainingImageId": "asset_{dataId}",
    "assetId": "asset_{dataId}",
    "jobId": "job_{trainingId}",
}


def with_real_ids(case: Case[Any], ids: dict[str, str], prefix: str) -> None:
    """Real ids in the path; never for DELETE, which would leave the later operations none."""
    if case.method.upper() == "DELETE":
        return
    params = case.path_parameters or {}
    for name in params:
        if prefix.startswith("/compat/scenario"):
            if name in SCENARIO_IDS:
                params[name] = SCENARIO_IDS[name].format(**ids)
        elif name in ids:
            params[name] = ids[name]


def fuzz(target: Target, spec: dict[str, Any], prefix: str) -> int:
    """Runs every operation of ``spec`` (served under ``prefix``); returns how many ran."""
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = target.app
    ran = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the document is valid
        operation = result.ok()
        if operation.path.endswith("/events"):
            continue

        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases, real=st.booleans())
        def run(case: Case[Any], real: bool) -> None:
            if real:
                with_real_ids(case, target.ids, prefix)
            response = case.call(base_url=f"http://testserver{prefix}", headers=target.headers)
            assert response.status_code < 500, (
                f"{case.method} {prefix}{case.formatted_path} -> {response.status_code}\n"
                f"{case.as_curl_command(base_url=prefix)}\n{response.text[:500]}"
            )

        run()
        ran += 1
    return ran


def test_the_native_api_answers_no_5xx(target: Target) -> None:
    assert fuzz(target, target.app.openapi(), "") >= 25


@pytest.mark.parametrize(
    ("prefix", "minimum"),
    [("/compat/photogpt", 7), ("/compat/runware", 1), ("/compat/scenario/v1", 11)],
)
def test_every_dialect_answers_no_5xx(target: Target, prefix: str, minimum: int) -> None:
    mount = "/compat/runware" if prefix == "/compat/runware" else prefix
    assert fuzz(target, sub_app(target.app, mount).openapi(), prefix) >= minimum
