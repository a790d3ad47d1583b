"""Lifecycle webhooks of a real `fast` training on the tiny model and of a prediction with its
LoRA, through the native API, delivered to a real HTTP receiver: every event named in
``webhookEvents`` arrives, signed (Standard Webhooks), in the run's order, each carrying the
run as ``GET`` presents it. The clock runs fast (injected), so the 30-second throttle of
``training.progress`` lets progress through within a training of seconds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from loraforge.bootstrap import build_worker
from loraforge.domain.events import PREDICTION_EVENTS, TRAINING_EVENTS
from loraforge.settings import Settings
from tests.conftest import Api, serving
from tests.databases import SqliteDatabases
from tests.fakes import FastClock
from tests.ml.pictures import samples

SPEED_UP = 2000  # clock seconds per real second: a step of a few ms is seconds of clock


@pytest.fixture
def hooked(
    tmp_path: Path, sqlite_databases: SqliteDatabases, httpserver: HTTPServer
) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_databases.create(tmp_path),
        signing_secret="test-secret",
        public_url="https://lf.example",
        blob_sweep_interval_s=0,
        job_lease_s=10**9,  # in clock seconds: the fast clock must not expire the lease
        fetch_allow_hosts=[f"{httpserver.host}:{httpserver.port}"],
    )
    with serving(settings, clock=FastClock(SPEED_UP)) as api:
        yield api


def verified(secret: str, request: Request) -> dict[str, Any]:
    """The body, after the receiver's Standard Webhooks check (written from the spec)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}."
    expected = hmac.new(key, signed.encode() + request.get_data(), hashlib.sha256).digest()
    scheme, _, signature = request.headers["webhook-signature"].partition(",")
    assert scheme == "v1"
    assert hmac.compare_digest(base64.b64decode(signature), expected)
    body: dict[str, Any] = json.loads(request.get_data())
    return body


def test_every_event_of_a_training_and_a_prediction_arrives_signed_in_order(
    hooked: Api, httpserver: HTTPServer
) -> None:
    received: list[Request] = []

    def receive(request: Request) -> Response:
        received.append(request)
        return Response(status=204)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(receive)
    c, client, headers = hooked.container, hooked.client, hooked.headers
    secret = client.post("/v1/webhooks/secret", headers=headers).json()["secret"]
    model_id = client.post("/v1/models", json={"displayName": "m"}, headers=headers).json()["id"]
    for sample in samples(4, seed=3, shape="square", colour="red", pattern="striped"):
        answer = client.post(f"/v1/models/{model_id}/data", content=sample.image, headers=headers)
        assert answer.status_code == 201, answer.text
    hook = httpserver.url_for("/hook")
    answer = client.post(
        f"/v1/models/{model_id}/trainings",
        json={"trainingSpeed": "fast", "webhookUrl": hook, "webhookEvents": TRAINING_EVENTS},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    training_id = answer.json()["trainingId"]
    worker = build_worker(c, owner="t")  # the real trainer and generator

    assert worker.run_once()
    while c.webhooks.deliver_due():
        pass

    training = client.get(f"/v1/models/{model_id}/trainings/{training_id}", headers=headers)
    assert training.json()["status"] == "succeeded"
    assert training.json()["webhookEvents"] == list(TRAINING_EVENTS)
    events = [verified(secret, r) for r in received]
    types = [e["type"] for e in events]
    assert types[0] == "training.started"
    assert types[-1] == "training.succeeded"
    assert set(types[1:-1]) == {"training.progress", "training.sample"}
    progress = [e for e in events if e["type"] == "training.progress"]
    assert 2 <= len(progress) <= 9  # at most one per tenth of the steps, the end excluded
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    steps = [
        e["step"] if e["type"] == "training.progress" else e["sample"]["step"] for e in events[1:-1]
    ]
    assert steps == sorted(steps)
    # Every sample the training lists was announced, with a signed link to its image.
    listed = client.get(f"/v1/models/{model_id}/trainings/{training_id}/samples", headers=headers)
    announced = [e["sample"] for e in events if e["type"] == "training.sample"]
    assert [(s["step"], s["imageId"]) for s in announced] == [
        (s["step"], s["image"]["id"]) for s in listed.json()
    ]
    assert all("&sig=" in s["image"] for s in announced)
    assert all(e["data"]["id"] == training_id for e in events)
    assert events[-1]["data"] == training.json()  # the run as the API presents it

    received.clear()
    answer = client.post(
        "/v1/predictions",
        json={
            "scaleConfigs": {"a": {"scale": 1, "modelId": model_id, "trainingId": training_id}},
            "prompt": "a red striped square",
            "seed": 1,
            "num_inference_steps": 2,
            "webhookUrl": hook,
            "webhookEvents": PREDICTION_EVENTS,
        },
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    prediction_id = answer.json()["predictionId"]
    assert worker.run_once()
    while c.webhooks.deliver_due():
        pass

    events = [verified(secret, r) for r in received]
    assert [(e["type"], e["sequence"]) for e in events] == [
        ("prediction.started", 1),
        ("prediction.succeeded", 2),
    ]
    prediction = client.get(f"/v1/predictions/{prediction_id}", headers=headers).json()
    sent = events[-1]["data"]
    links, expected_links = sent.pop("outputImages"), prediction.pop("outputImages")
    assert sent == prediction  # the links' expiry differs: the fast clock moved on
    assert [link.partition("&expires=")[0] for link in links] == [
        link.partition("&expires=")[0] for link in expected_links
    ]
    assert links[0].startswith(f"https://lf.example/v1/images/{sent['outputImageIds'][0]}/")
