"""Stress: many rounds of identical uploads, deletes, replacements and sweeps at once.

Three payloads only, so almost every write reuses a blob that another request is removing.
After every round each committed row's blobs must exist; at the end a sweep leaves exactly the
referenced blobs. In one process on SQLite and PostgreSQL, and with two ``loraforge serve``
processes (each sweeping every second) plus a third process sweeping, on one PostgreSQL
database and one blob folder, as the README's several-server deployment runs.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import ImageRow, TrainingBlobRow, TrainingRow
from loraforge.api.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.domain.errors import NotFound
from loraforge.settings import Settings
from tests import imagefactory
from tests.databases import PostgresDatabases
from tests.e2e.servers import serving

PAYLOADS = [imagefactory.jpeg(40, 30), imagefactory.png(36, 20), imagefactory.jpeg(44, 28)]
THREADS = 8
OPS_PER_THREAD = 4


# What the workload speaks through: FastAPI's in-process client or httpx over TCP.
Client = TestClient | httpx.Client


@dataclass
class Workload:
    """Threads that each upload, replace and delete training images of one model, drawing the
    bytes from three payloads; ``sweep`` runs beside them."""

    clients: list[Client]
    headers: dict[str, str]
    data_url: str
    sweep: Callable[[], object]
    ids: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def round(self, seed: int) -> None:
        barrier = threading.Barrier(THREADS + 1, timeout=60)

        def act(n: int) -> None:
            rng = random.Random(seed * 100 + n)
            client = self.clients[n % len(self.clients)]
            barrier.wait()
            for _ in range(OPS_PER_THREAD):
                self._one(client, rng)

        def sweep() -> None:
            barrier.wait()
            self.sweep()

        with ThreadPoolExecutor(THREADS + 1) as pool:
            futures = [pool.submit(act, n) for n in range(THREADS)] + [pool.submit(sweep)]
            for future in futures:
                future.result(timeout=120)

    def _one(self, client: Client, rng: random.Random) -> None:
        payload = rng.choice(PAYLOADS)
        op = rng.choice(["upload", "upload", "replace", "delete"])
        with self._lock:
            target = rng.choice(self.ids) if self.ids and op != "upload" else None
            if op == "delete" and target is not None:
                self.ids.remove(target)
        if target is None:
            answer = client.post(self.data_url, content=payload, headers=self.headers)
            if answer.status_code == 201:
                with self._lock:
                    self.ids.append(answer.json()["dataId"])
        elif op == "replace":
            answer = client.put(f"{self.data_url}/{target}", content=payload, headers=self.headers)
        else:
            answer = client.delete(f"{self.data_url}/{target}", headers=self.headers)
        self.statuses.append(answer.status_code)


def referenced_keys(container: Container) -> set[str]:
    with Session(container.uow.engine) as s:
        keys: set[str] = set()
        for image in s.scalars(select(ImageRow)):
            keys |= {image.original_key, image.display_key, image.thumbnail_key}
        keys |= set(s.scalars(select(TrainingBlobRow.blob_key)))
        keys |= {k for k in s.scalars(select(TrainingRow.artifact_key)) if k is not None}
    return keys


def assert_committed_blobs_exist(container: Container) -> None:
    missing = set()
    for key in referenced_keys(container):
        try:
            container.blobs.size(key)
        except NotFound:
            missing.add(key)
    assert not missing, f"{len(missing)} blobs of committed rows are gone"


def stored_keys(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "blobs").glob("??/??/*") if p.is_file()}


def run_rounds(work: Workload, container: Container, rounds: int) -> None:
    for n in range(rounds):
        work.round(seed=n)
        assert_committed_blobs_exist(container)
    # Only outcomes a client expects: created, replaced, deleted, or the image another thread
    # deleted first (404); never a 5xx.
    assert set(work.statuses) <= {200, 201, 204, 404}, sorted(set(work.statuses))
    assert work.statuses.count(201) > rounds  # the workload really wrote
    container.sweeper.sweep()
    assert stored_keys(container.settings.data_dir) == referenced_keys(container)


@pytest.fixture
def racing(settings: Settings) -> Iterator[Container]:
    built = build(
        settings.model_copy(update={"blob_sweep_grace_s": 0, "max_images_per_type": 10_000})
    )
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
