"""A zero-trust schema pass: schemathesis generates requests from each wire format's OpenAPI
document (the native ``/openapi.json`` and each dialect sub-app's own document) and sends them
with a real key. Every answer must be below 500, whatever the input.

Schema-driven data rarely holds the values that broke the server, so every operation also gets
valid cases with a hostile twist (``TWISTS``): an integer past 64 bits in the query, NUL in
path ids, escaped lone surrogates in JSON strings.

Bounded and repeatable: ``derandomize`` fixes the examples, a fixed number per operation (valid
and schema-violating ones mixed), no example database. Half of the examples put real ids (a
model with a training image, a queued training) into the path, so bodies and parameters reach
the services instead of stopping at 404 (never for DELETE, which would leave the later
operations no model). Event streams are left out: a stream of a queued training only ends
when it does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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

from loraforge.app import create_app
from loraforge.bootstrap import Container
from tests import imagefactory

EXAMPLES_PER_OPERATION = 15
TWISTED_EXAMPLES = 3  # per twist


@dataclass
class Target:
    app: FastAPI
    client: TestClient
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
        yield Target(app=app, client=client, headers=headers, ids=ids)


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


# Hostile twists on a generated case, the shapes of value a schema-driven generator rarely
# makes on its own: integers past 64 bits in the query (pageNum), NUL in path ids (PostgreSQL
# text), escaped lone surrogates in JSON strings (echoed answers that cannot be encoded).
TWISTS = ("huge_integers", "nul_ids", "lone_surrogates")


def twist(case: Case[Any], how: str) -> None:
    if how == "huge_integers":
        # The first integer query parameter the operation declares; the other integers left
        # to their defaults, or an out-of-range pageSize would be refused before pageNum is.
        integers = [
            p.name
            for p in case.operation.query
            if p.definition.get("schema", {}).get("type") == "integer"
        ]
        query = {k: v for k, v in (case.query or {}).items() if k not in integers}
        case.query = {**query, integers[0]: 10**19} if integers else query
    elif how == "nul_ids":
        for name, value in (case.path_parameters or {}).items():
            case.path_parameters[name] = f"{value}\x00"


def send_with_surrogates(target: Target, case: Case[Any], prefix: str) -> Any:
    """The case with every string of its JSON body an escaped lone surrogate; sent here, as
    ``json.dumps`` (ASCII) can write one and schemathesis' UTF-8 serializer cannot."""
    return target.client.request(
        case.method,
        prefix + case.formatted_path,
        params=case.query,
        content=json.dumps(_surrogates(case.body)).encode(),
        headers={**target.headers, "Content-Type": "application/json"},
    )


def _surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return "\ud800"
    if isinstance(value, dict):
        return {k: _surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_surrogates(v) for v in value]
    return value


def check(target: Target, case: Case[Any], prefix: str, *, real: bool, how: str) -> None:
    """Send the case (real ids and a twist applied) and fail on any 5xx."""
    if real:
        with_real_ids(case, target.ids, prefix)
    twist(case, how)
    if how == "lone_surrogates" and isinstance(case.body, dict | list):
        response = send_with_surrogates(target, case, prefix)
    else:
        response = case.call(base_url=f"http://testserver{prefix}", headers=target.headers)
    assert response.status_code < 500, (
        f"{case.method} {prefix}{case.formatted_path} ({how}) -> {response.status_code}\n"
        f"{case.as_curl_command(base_url=prefix)}\n{response.text[:500]}"
    )


BOUNDED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def twisted(
    target: Target, valid: st.SearchStrategy[Case[Any]], prefix: str, how: str
) -> Callable[[], None]:
    @settings(BOUNDED, max_examples=TWISTED_EXAMPLES)
    @given(case=valid)
    def run(case: Case[Any]) -> None:
        check(target, case, prefix, real=True, how=how)

    return run


def fuzz(target: Target, spec: dict[str, Any], prefix: str) -> int:
    """Runs every operation of ``spec`` (served under ``prefix``); returns how many ran.

    Each operation gets ``EXAMPLES_PER_OPERATION`` generated cases (valid and invalid, half of
    them with real ids), then ``TWISTED_EXAMPLES`` valid cases with real ids for each hostile
    twist: every twist reaches every operation, whatever examples the seed draws."""
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = target.app
    ran = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the document is valid
        operation = result.ok()
        if operation.path.endswith("/events"):
            continue
        valid = operation.as_strategy(GenerationMode.POSITIVE)
        cases = st.one_of(valid, operation.as_strategy(GenerationMode.NEGATIVE))

        @settings(BOUNDED, max_examples=EXAMPLES_PER_OPERATION)
        @given(case=cases, real=st.booleans())
        def run(case: Case[Any], real: bool) -> None:
            check(target, case, prefix, real=real, how="none")

        run()
        for how in TWISTS:
            twisted(target, valid, prefix, how)()
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
