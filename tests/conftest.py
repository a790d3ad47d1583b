"""Shared fixtures: settings on a real database (SQLite and PostgreSQL), containers, clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.settings import Settings
from tests.databases import PostgresDatabases, SqliteDatabases

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    return SqliteDatabases(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.close()


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_databases: SqliteDatabases
) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_databases.create(tmp_path)
        return
    pg: PostgresDatabases = request.getfixturevalue("postgres_databases")
    name = pg.create()
    yield pg.sqlalchemy_url(name)
    pg.drop(name)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        signing_secret="test-secret",
        blob_sweep_interval_s=0,
    )


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    built = build(settings)
    yield built
    built.close()


@dataclass
class Api:
    """A TestClient with a key of its own account, plus the container behind it."""

    client: TestClient
    container: Container
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def new_account(self) -> dict[str, str]:
        issued = self.container.keys.create(name="other")
        return {"Authorization": f"Bearer {issued.plaintext}"}


@contextmanager
def serving(settings: Settings, **adapters: Any) -> Iterator[Api]:
    """A server of its own, ``build(settings, **adapters)``, with a key: for tests that need
    settings (``settings.model_copy(update=...)``) or adapters (a clock, a captioner) of their
    own."""
    container = build(settings, **adapters)
    try:
        with TestClient(create_app(container=container)) as client:
            key = container.keys.create(name="t").plaintext
            yield Api(client=client, container=container, key=key)
    finally:
        container.close()


@pytest.fixture
def api(container: Container) -> Iterator[Api]:
    app = create_app(container=container)
    with TestClient(app) as client:
        yield Api(client=client, container=container, key=container.keys.create(name="t").plaintext)
