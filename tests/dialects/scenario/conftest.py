"""The Scenario dialect served for real: uvicorn in a thread, the official SDK as the client.

Every fixture here runs on SQLite and on PostgreSQL (``container`` from tests/conftest.py).
Trainings run on a worker thread with the fast ``FakeTrainer`` (tests/ml_fakes.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from scenario_sdk import Scenario

from loraforge.app import create_app
from loraforge.bootstrap import Container, build_worker
from loraforge.dialects.scenario import PREFIX
from loraforge.ports import Trainer
from tests.dialects.conftest import serve
from tests.ml_fakes import FakeGenerator, FakeTrainer


@contextmanager
def serving(container: Container) -> Iterator[str]:
    """The whole app (native API and dialects) under uvicorn; yields its base URL."""
    with serve(create_app(container=container)) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def working(container: Container) -> Iterator[FakeTrainer]:
    """A worker thread running queued jobs with the fast ``FakeTrainer`` until the block ends."""
    trainer = FakeTrainer()
    with working_with(container, trainer):
        yield trainer


@contextmanager
def working_with(container: Container, trainer: Trainer) -> Iterator[None]:
    """A worker thread running queued jobs with ``trainer`` until the block ends."""
    worker = build_worker(container, trainer=trainer, generator=FakeGenerator(), owner="sdk-test")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        container.queue.submit("stop")  # wake it from its idle wait
        thread.join(timeout=15)
        assert not thread.is_alive(), "the worker did not stop"


@dataclass
class Served:
    """A running server, a key of a fresh account, and SDK clients for it."""

    container: Container
    base_url: str
    key: str

    def sdk(self, key: str | None = None, *, max_retries: int = 0) -> Scenario:
        key = key or self.key
        return Scenario(
            api_key=key,
            api_secret=key,  # the SDK's secret is the loraforge key again
            base_url=self.base_url + PREFIX,
            max_retries=max_retries,
            timeout=10.0,
            _strict_response_validation=True,
        )

    def native_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def new_key(self) -> str:
        return self.container.keys.create(name="other").plaintext


@pytest.fixture
def served(container: Container) -> Iterator[Served]:
    with serving(container) as base_url:
        yield Served(container, base_url, container.keys.create(name="sdk").plaintext)


@pytest.fixture
def sdk(served: Served) -> Iterator[Scenario]:
    with served.sdk() as client:
        yield client


@dataclass
class Wire:
    """The Scenario routes through a TestClient, for raw status, header and body checks."""

    client: TestClient
    container: Container
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def url(self, path: str) -> str:
        return PREFIX + path


@pytest.fixture
def wire(container: Container) -> Iterator[Wire]:
    with TestClient(create_app(container=container)) as client:
        yield Wire(client, container, container.keys.create(name="wire").plaintext)
