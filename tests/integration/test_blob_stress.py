"""Stress: many rounds of identical uploads, deletes, replacements and sweeps at once.

Each round deletes the images of one payload while the same bytes are uploaded again, so
almost every write reuses a blob that another request is removing. After every round each
committed row's blobs must exist; at the end a sweep leaves exactly the referenced blobs. In
one process on SQLite and PostgreSQL (local and S3 blob stores), and with two ``loraforge
serve`` processes (each sweeping every second) plus a third process sweeping, on one
PostgreSQL database and one blob folder, as the several-server deployment of docs/operations.md
runs.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from fastapi.testclient import TestClient

from loraforge.adapters.storage.local import LocalBlobStore
from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.settings import Settings
from tests import imagefactory, s3_server
from tests.blob_checks import assert_committed_blobs_exist, referenced_keys, stored_keys
from tests.databases import PostgresDatabases
from tests.e2e.servers import serving

PER_ROUND = 6  # images deleted (and identical ones uploaded) at once in each round


# What the workload speaks through: FastAPI's in-process client or httpx over TCP.
Client = TestClient | httpx.Client


class Answered(Protocol):
    """A response of either client."""

    @property
    def status_code(self) -> int: ...


def payload(n: int) -> bytes:
    """Bytes of their own for round ``n`` (and ``n + 1000``): every round starts from blobs
    that only its own images use, so its deletes remove the last reference."""
    return imagefactory.jpeg(32 + n % 50, 24 + n // 50)


@dataclass
class Workload:
    """Rounds of: images of one payload are deleted while the same bytes are uploaded again,
    other images are replaced to and from them, and ``sweep`` runs beside."""

    clients: list[Client]
    headers: dict[str, str]
    data_url: str
    sweep: Callable[[], object]
    statuses: list[int] = field(default_factory=list)

    def round(self, n: int) -> None:
        same, other = payload(n), payload(n + 1000)
        first = self.clients[0]
        doomed = [self._upload(first, same) for _ in range(PER_ROUND)]
        kept = [self._upload(first, other) for _ in range(2)]
        url = self.data_url
        deletes = [self._delete(data_id) for data_id in doomed]
        writes: list[Callable[[Client], Answered]] = [
            *(lambda c: c.post(url, content=same, headers=self.headers) for _ in range(2)),
            lambda c: c.put(f"{url}/{kept[0]}", content=same, headers=self.headers),
            lambda c: c.put(f"{url}/{doomed[0]}", content=other, headers=self.headers),
        ]
        ops = deletes + writes
        # Deletes start first and a few writes a little later, staggered: the last delete
        # often removes the last reference just as identical bytes are being written again
        # (and no later write of them comes to put them back).
        rng = random.Random(n)
        starts = [rng.uniform(0, 0.01) for _ in deletes] + [
            rng.uniform(0.005, 0.025) for _ in writes
        ]
        barrier = threading.Barrier(len(ops) + 1, timeout=60)

        def run(k: int, op: Callable[[Client], Answered]) -> None:
            barrier.wait()
            time.sleep(starts[k])
            self.statuses.append(op(self.clients[k % len(self.clients)]).status_code)

        def sweep() -> None:
            barrier.wait()
            self.sweep()

        with ThreadPoolExecutor(len(ops) + 1) as pool:
            futures = [pool.submit(run, k, op) for k, op in enumerate(ops)]
            futures.append(pool.submit(sweep))
            for future in futures:
                future.result(timeout=120)

    def _delete(self, data_id: str) -> Callable[[Client], Answered]:
        return lambda c: c.delete(f"{self.data_url}/{data_id}", headers=self.headers)

    def _upload(self, client: Client, data: bytes) -> str:
        answer = client.post(self.data_url, content=data, headers=self.headers)
        assert answer.status_code == 201, answer.text
        data_id: str = answer.json()["dataId"]
        return data_id


def run_rounds(work: Workload, container: Container, rounds: int) -> None:
    for n in range(rounds):
        work.round(n)
        assert_committed_blobs_exist(container)
    # Only outcomes a client expects: created, replaced, deleted, or the image another thread
    # deleted first (404); never a 5xx.
    assert set(work.statuses) <= {200, 201, 204, 404}, sorted(set(work.statuses))
    container.sweeper.sweep()
    assert stored_keys(container) == referenced_keys(container)


RACING = {"blob_sweep_grace_s": 0, "max_images_per_type": 10_000}


@pytest.fixture
def slow_removals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each removal takes up to 20 ms, as a remote store's round trip or a busy disk would:
    the window in which an unguarded removal loses a writer's bytes, made wide enough to hit
    in a few rounds."""
    delete = LocalBlobStore.delete
    jitter = random.Random(0)

    def slow_delete(store: LocalBlobStore, key: str) -> None:
        time.sleep(jitter.uniform(0, 0.02))
        delete(store, key)

    monkeypatch.setattr(LocalBlobStore, "delete", slow_delete)


@pytest.fixture
def racing(settings: Settings, slow_removals: None) -> Iterator[Container]:
    built = build(settings.model_copy(update=RACING))
    yield built
    built.close()


@pytest.fixture
def racing_on_s3(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    for name, value in s3_server.CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3 = {
        "blob_store": "s3",
        "s3_bucket": s3_server.new_bucket(),
        "s3_endpoint_url": s3_server.endpoint_url(),
        "s3_region": s3_server.REGION,
    }
    built = build(settings.model_copy(update={**RACING, **s3}))
    yield built
    built.close()


def new_model(client: Client, headers: dict[str, str]) -> str:
    made = client.post("/v1/models", json={"displayName": "stress"}, headers=headers)
    assert made.status_code == 201, made.text
    model_id: str = made.json()["id"]
    return f"/v1/models/{model_id}/data"


def test_one_process(racing: Container) -> None:
    with TestClient(create_app(container=racing)) as client:
        headers = {"Authorization": f"Bearer {racing.keys.create(name='s').plaintext}"}
        work = Workload([client], headers, new_model(client, headers), racing.sweeper.sweep)
        run_rounds(work, racing, rounds=12)


def test_one_process_on_s3(racing_on_s3: Container) -> None:
    """Removals on S3 take a round trip each: a wide window for a writer to slip into."""
    c = racing_on_s3
    with TestClient(create_app(container=c)) as client:
        headers = {"Authorization": f"Bearer {c.keys.create(name='s').plaintext}"}
        work = Workload([client], headers, new_model(client, headers), c.sweeper.sweep)
        run_rounds(work, c, rounds=8)


def test_two_server_processes_on_postgresql(
    tmp_path: Path, postgres_databases: PostgresDatabases
) -> None:
    name = postgres_databases.create()
    url = postgres_databases.sqlalchemy_url(name)
    data_dir = tmp_path / "data"
    env = {
        "LORAFORGE_WORKERS": "0",
        "LORAFORGE_BLOB_SWEEP_INTERVAL_S": "1",
        "LORAFORGE_BLOB_SWEEP_GRACE_S": "0",
        "LORAFORGE_MAX_IMAGES_PER_TYPE": "10000",
        "LORAFORGE_SIGNING_SECRET": "stress",
    }
    settings = Settings(data_dir=data_dir, database_url=url, blob_sweep_grace_s=0)
    try:
        with serving(data_dir, url, **env) as first, serving(data_dir, url, **env) as second:
            headers = {"Authorization": f"Bearer {first.key}"}
            # Idle connections are dropped before the server's keep-alive timeout (5 s) could
            # close one just as a request goes out on it (a reset, not the server's fault).
            limits = httpx.Limits(keepalive_expiry=1.0)
            with (
                httpx.Client(base_url=first.base_url, timeout=60, limits=limits) as a,
                httpx.Client(base_url=second.base_url, timeout=60, limits=limits) as b,
            ):
                sweeper = build(settings)  # a third process's view: `loraforge blobs sweep`
                try:
                    work = Workload([a, b], headers, new_model(a, headers), sweeper.sweeper.sweep)
                    run_rounds(work, sweeper, rounds=10)
                finally:
                    sweeper.close()
    finally:
        postgres_databases.drop(name)
