"""A database that does not answer costs a request a few seconds and a 503, never a hang.

PostgreSQL hung -- accepting TCP but answering nothing, made with a proxy the test freezes
(tests/freezing_proxy.py) -- gives /readyz and every request a 503 with Retry-After within the
configured timeouts, and the server recovers by itself once PostgreSQL answers again. A full
connection pool is ``Unavailable`` (503) after the pool timeout, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import cast

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from loraforge.app import create_app
from loraforge.bootstrap import build
from loraforge.domain.errors import Unavailable
from loraforge.settings import Settings
from tests import imagefactory
from tests.databases import PostgresDatabases
from tests.freezing_proxy import FreezingProxy, within

CONNECT_S = 2
STATEMENT_S = 1.0
READY_S = 1.0
# Scheduling slack on a loaded test machine; the limits themselves are a few seconds.
SLACK_S = 2.0
RECOVERY_S = 10.0


def assert_unavailable(response: httpx2.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.text)
    assert int(response.headers["Retry-After"]) >= 1


def upload(client: TestClient, headers: dict[str, str], model_id: str) -> httpx2.Response:
    return client.post(
        "/v1/images",
        params={"modelId": model_id, "type": "modelInput"},
        content=imagefactory.jpeg(24, 16),
        headers=headers,
    )


def test_hung_postgres_answers_503_within_seconds_and_recovers_by_itself(
    tmp_path: Path, postgres_databases: PostgresDatabases
) -> None:
    name = postgres_databases.create()
    real = make_url(postgres_databases.sqlalchemy_url(name))
    with ExitStack() as stack:
        stack.callback(postgres_databases.drop, name)
        proxy = stack.enter_context(FreezingProxy((real.host or "127.0.0.1", real.port or 5432)))
        url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=url,
            signing_secret="s",
            blob_sweep_interval_s=0,
            db_connect_timeout_s=CONNECT_S,
            db_statement_timeout_s=STATEMENT_S,
            ready_timeout_s=READY_S,
        )
        container = build(settings)
        stack.callback(container.close)
        headers = {"Authorization": f"Bearer {container.keys.create(name='pg').plaintext}"}
        client = stack.enter_context(TestClient(create_app(container=container)))
        created = client.post("/v1/models", json={"displayName": "Hung"}, headers=headers)
        model_id = created.json()["id"]
        link = upload(client, headers, model_id).json()["url"]
        busy = stack.enter_context(container.uow.engine.connect())
        busy.execute(text("SELECT 1"))  # a connection in the middle of its work

        proxy.freeze()
        stack.callback(proxy.thaw)  # first thing on the way out: a failure leaves nothing stuck
        # /readyz answers within its own limit even while its check still waits.
        assert_unavailable(within(READY_S + SLACK_S, lambda: client.get("/readyz")))
        # Every request: the pool's check of its idle connection, then new connections, give
        # up after the connect timeout at most (most at once, see engine._ConnectGate).
        for call in (
            lambda: client.get("/v1/models", headers=headers),
            lambda: client.post("/v1/models", json={"displayName": "x"}, headers=headers),
            lambda: upload(client, headers, model_id),
            lambda: client.get(link),
            lambda: client.get("/compat/photogpt/models", headers=headers),
            lambda: client.get("/readyz"),
        ):
            assert_unavailable(within(2 * CONNECT_S + SLACK_S, call))
        # A statement sent to the hung server: dropped after the statement timeout + 1 s.
        with pytest.raises(OperationalError):
            within(STATEMENT_S + 1 + SLACK_S, lambda: busy.execute(text("SELECT 1")))

        proxy.thaw()
        deadline = time.monotonic() + RECOVERY_S
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready again after the thaw"
            time.sleep(0.1)  # a load balancer's probe: poll until ready
        assert client.get("/v1/models", headers=headers).status_code == 200
        assert upload(client, headers, model_id).status_code == 201
        assert client.get(link).status_code == 200


def test_a_full_connection_pool_is_unavailable_after_the_pool_timeout(
    tmp_path: Path, database_url: str
) -> None:
    """Requests and /readyz then answer 503 (``Unavailable``), not after 30 s."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        signing_secret="s",
        db_pool_timeout_s=1.0,
    )
    container = build(settings)
    try:
        key = container.keys.create(name="pool").plaintext
        pool = cast(QueuePool, container.uow.engine.pool)
        with ExitStack() as held:
            # Every connection of the pool (its size and overflow) is busy elsewhere.
            for _ in range(pool.size() + pool._max_overflow):
                held.enter_context(container.uow.engine.connect())
            for call in (partial(container.keys.authenticate, key), container.uow.check):
                with pytest.raises(Unavailable):
                    within(1.0 + SLACK_S, call)
        assert container.keys.authenticate(key).account_id
    finally:
        container.close()
