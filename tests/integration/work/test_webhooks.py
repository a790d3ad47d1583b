"""Standard Webhooks end to end: a finished training's signed POST through the real sender.

Retries, backoff and the retry window are use-case tests: tests/unit/services/test_webhooks.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from loraforge.app import create_app
from loraforge.bootstrap import Container, build, build_worker
from loraforge.settings import Settings
from tests import imagefactory
from tests.integration.work.helpers import ManualClock, queued_training
from tests.ml_fakes import FakeGenerator, FakeTrainer


@pytest.fixture
def hooked(settings: Settings, httpserver: HTTPServer, clock: ManualClock) -> Iterator[Container]:
    allow = [f"{httpserver.host}:{httpserver.port}"]
    container = build(settings.model_copy(update={"fetch_allow_hosts": allow}), clock=clock)
    yield container
    container.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def _verify(secret: str, request: Request) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}."
    expected = hmac.new(key, signed.encode() + request.get_data(), hashlib.sha256).digest()
    scheme, _, signature = request.headers["webhook-signature"].partition(",")
    return scheme == "v1" and hmac.compare_digest(base64.b64decode(signature), expected)


def _training_with_hook(container: Container, url: str) -> str:
    training_id = queued_training(container)
    with container.uow(write=True) as uow:
        training = uow.trainings.get(training_id)
        assert training is not None
        training.webhook_url = url
        uow.trainings.update(training)
        uow.commit()
    return training_id


def test_terminal_status_is_delivered_signed(hooked: Container, httpserver: HTTPServer) -> None:
    received: list[Request] = []

    def handler(request: Request) -> Response:
        received.append(request)
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    training_id = _training_with_hook(hooked, httpserver.url_for("/hook"))
    account_id = hooked.keys.list()[0].account_id
    secret = hooked.webhooks.rotate_secret(account_id)
    worker = build_worker(hooked, trainer=FakeTrainer(), generator=FakeGenerator())
    assert worker.run_once()
    assert hooked.webhooks.deliver_due() == 1
    assert len(received) == 1
    assert _verify(secret, received[0])
    payload = json.loads(received[0].get_data())
    assert payload["type"] == "training.succeeded"
    assert payload["data"]["id"] == training_id
    assert hooked.webhooks.deliver_due() == 0  # delivered once


def test_blocked_webhook_target_is_never_contacted(
    settings: Settings, httpserver: HTTPServer, clock: ManualClock
) -> None:
    container = build(settings, clock=clock)  # the test server is NOT allow-listed
    try:
        _training_with_hook(container, httpserver.url_for("/hook"))
        build_worker(container, trainer=FakeTrainer(), generator=FakeGenerator()).run_once()
        assert container.webhooks.deliver_due() == 1
        assert httpserver.log == []
        with container.uow() as uow:
            (delivery,) = uow.webhooks.list_for_account(container.keys.list()[0].account_id)
        assert delivery.last_error is not None
    finally:
        container.close()


def test_secret_endpoint_rotates(hooked: Container) -> None:
    key = hooked.keys.create(name="w").plaintext
    with TestClient(create_app(container=hooked)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        first = client.post("/v1/webhooks/secret", headers=headers)
        second = client.post("/v1/webhooks/secret", headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["secret"].startswith("whsec_")
    assert first.json()["secret"] != second.json()["secret"]


class RawSink:
    """A bare HTTP receiver that keeps each request's head byte for byte: werkzeug (behind
    pytest-httpserver) folds a repeated ``Content-Type`` into one, hiding the fault."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.heads: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                        data += chunk
                    self.heads.append(data.partition(b"\r\n\r\n")[0])
                    conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def test_a_delivery_carries_content_type_once(settings: Settings, clock: ManualClock) -> None:
    sink = RawSink()
    container = build(
        settings.model_copy(update={"fetch_allow_hosts": [sink.address]}), clock=clock
    )
    try:
        _training_with_hook(container, f"http://{sink.address}/hook")
        worker = build_worker(container, trainer=FakeTrainer(), generator=FakeGenerator())
        assert worker.run_once()
        assert container.webhooks.deliver_due() == 1
    finally:
        container.close()
        sink.close()

    assert len(sink.heads) == 1
    lines = sink.heads[0].split(b"\r\n")[1:]
    content_types = [
        v for n, _, v in (h.partition(b":") for h in lines) if n.lower() == b"content-type"
    ]
    assert [v.strip() for v in content_types] == [b"application/json"]


@pytest.mark.parametrize(
    ("events", "says"),
    [
        (["training.started", "training.exploded"], "training.exploded"),
        (["prediction.started"], "prediction.started"),
        ([], "names no event"),
        ("training.started", "webhookEvents"),  # not a list
        ([7], "webhookEvents"),
    ],
)
def test_unknown_webhook_events_are_refused_naming_the_field(
    hooked: Container, events: object, says: str
) -> None:
    key = hooked.keys.create(name="w").plaintext
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(container=hooked)) as client:
        model_id = client.post("/v1/models", json={"displayName": "m"}, headers=headers).json()
        refused = client.post(
            f"/v1/models/{model_id['id']}/trainings",
            json={"webhookUrl": "https://hooks.example/x", "webhookEvents": events},
            headers=headers,
        )
        predicted = client.post(
            "/v1/predictions",
            json={
                "scaleConfigs": {"a": {"scale": 1, "modelId": "m", "trainingId": "t"}},
                "prompt": "p",
                "webhookUrl": "https://hooks.example/x",
                "webhookEvents": ["training.started"],
            },
            headers=headers,
        )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["field"].startswith("webhookEvents")
    assert says in error["message"] or says in error["field"]
    assert predicted.status_code == 422, predicted.text
    assert predicted.json()["error"]["field"] == "webhookEvents"


def test_chosen_events_are_echoed_and_the_default_is_null(hooked: Container) -> None:
    training_id = queued_training(hooked)
    key = hooked.keys.create(name="w").plaintext
    with hooked.uow() as uow:
        training = uow.trainings.get(training_id)
    assert training is not None
    assert training.webhook_events is None
    with TestClient(create_app(container=hooked)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        model_id = client.post("/v1/models", json={"displayName": "m"}, headers=headers).json()
        client.post(
            f"/v1/models/{model_id['id']}/data",
            content=imagefactory.png(32, 32),
            headers=headers,
        )
        started = client.post(
            f"/v1/models/{model_id['id']}/trainings",
            json={
                "webhookUrl": "https://hooks.example/x",
                "webhookEvents": ["training.succeeded", "training.started"],
            },
            headers=headers,
        )
        assert started.status_code == 201, started.text
        url = f"/v1/models/{model_id['id']}/trainings/{started.json()['trainingId']}"
        shown = client.get(url, headers=headers).json()
        default = client.post(f"/v1/models/{model_id['id']}/trainings", json={}, headers=headers)
        shown_default = client.get(
            f"/v1/models/{model_id['id']}/trainings/{default.json()['trainingId']}",
            headers=headers,
        ).json()
    assert shown["webhookEvents"] == ["training.started", "training.succeeded"]
    assert shown_default["webhookEvents"] is None
