"""The repository contract runs against every implementation of the ports: the in-memory fakes
the service tests use, and the SQL repositories on SQLite and PostgreSQL. A fake that answers
differently from SQL fails here, before a service test can pass on behaviour SQL does not have.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loraforge.adapters.db.engine import make_engine
from loraforge.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from loraforge.ports import UnitOfWorkFactory
from tests.databases import PostgresDatabases, SqliteDatabases
from tests.fakes import FakeUnitOfWorkFactory


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
def uow(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_databases: SqliteDatabases
) -> Iterator[UnitOfWorkFactory]:
    if request.param == "fake":
        yield FakeUnitOfWorkFactory()
        return
    if request.param == "sqlite":
        engine = make_engine(sqlite_databases.create(tmp_path))
        yield SqlUnitOfWorkFactory(engine)
        engine.dispose()
        return
    pg: PostgresDatabases = request.getfixturevalue("postgres_databases")
    name = pg.create()
    engine = make_engine(pg.sqlalchemy_url(name))
    yield SqlUnitOfWorkFactory(engine)
    engine.dispose()
    pg.drop(name)
