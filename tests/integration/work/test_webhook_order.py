"""A run's webhooks arrive in order with several senders on PostgreSQL: two delivery loops, each
with its own engine (as two worker processes have), send the deliveries of three runs to a real
HTTP receiver that fails some first attempts, so retries and backoff interleave with the rival
loop. No request of a run's event may reach the receiver before every earlier event of that run
was acknowledged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from loraforge.bootstrap import Container, build
from loraforge.settings import Settings
from tests.databases import PostgresDatabases
from tests.fakes import FastClock

RUNS = ("run-a", "run-b", "run-c")
EVENTS_PER_RUN = 6
SPEED_UP = 50  # the clock runs 50 times real time: a 5 s backoff takes 0.1 s, a claim lasts 2.4 s


class Receiver:
    """Fails the first attempt of every third event; checks order as each request arrives."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[str, int] = dict.fromkeys(RUNS, 0)
        self.attempts: dict[tuple[str, int], int] = {}
        self.overtaken: list[str] = []

    def handle(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        run, sequence = body["data"]["id"], body["sequence"]
        with self.lock:
            if self.acked[run] < sequence - 1:
                self.overtaken.append(f"{run} #{sequence} before #{self.acked[run] + 1} was acked")
            tries = self.attempts[run, sequence] = self.attempts.get((run, sequence), 0) + 1
        time.sleep(0.01)  # a receiver that takes a moment widens every race window
        if sequence % 3 == 0 and tries == 1:
            return Response("try again", status=503)
        with self.lock:
            self.acked[run] = max(self.acked[run], sequence)
        return Response("ok")


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_databases: PostgresDatabases) -> Iterator[Settings]:
    name = postgres_databases.create()
    yield Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_databases.sqlalchemy_url(name),
        signing_secret="test-secret",
        blob_sweep_interval_s=0,
    )
    postgres_databases.drop(name)


@pytest.fixture
def receiver_server() -> Iterator[HTTPServer]:
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def test_two_delivery_loops_keep_each_run_in_order(
    pg_settings: Settings, receiver_server: HTTPServer
) -> None:
    receiver = Receiver()
    receiver_server.expect_request("/hook", method="POST").respond_with_handler(receiver.handle)
    allowed = pg_settings.model_copy(
        update={"fetch_allow_hosts": [f"{receiver_server.host}:{receiver_server.port}"]}
    )
    clock = FastClock(SPEED_UP)
    senders: list[Container] = [build(allowed, clock=clock) for _ in range(2)]
    try:
        issued = senders[0].keys.create(name="hooks")
        account_id = senders[0].keys.authenticate(issued.plaintext).account_id
        with senders[0].uow(write=True) as uow:
            for n in range(EVENTS_PER_RUN):  # the runs' events interleaved, as they happen
                for run in RUNS:
                    senders[0].webhooks.enqueue(
                        uow,
                        account_id=account_id,
                        url=receiver_server.url_for("/hook"),
                        event="training.progress",
                        data={"id": run},
                        run_id=run,
                        extra={"step": n},
                    )
            uow.commit()

        stop = threading.Event()
        errors: list[BaseException] = []

        def loop(container: Container) -> None:
            try:
                while not stop.is_set():
                    if container.webhooks.deliver_due(limit=4) == 0:
                        time.sleep(0.005)
            except BaseException as exc:  # reported by the test below
                errors.append(exc)

        threads = [threading.Thread(target=loop, args=(c,)) for c in senders]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            n < EVENTS_PER_RUN for n in receiver.acked.values()
        ):
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join()
        with senders[0].uow() as uow:
            deliveries = uow.webhooks.list_for_account(account_id)
    finally:
        for container in senders:
            container.close()

    assert errors == []
    assert receiver.overtaken == []
    assert receiver.acked == dict.fromkeys(RUNS, EVENTS_PER_RUN)
    retried = [key for key, tries in receiver.attempts.items() if tries > 1]
    assert len(retried) == len(RUNS) * (EVENTS_PER_RUN // 3)  # the failures were retried
    assert all(d.delivered_at is not None for d in deliveries)
    assert sorted((d.run_id or "", d.sequence or 0) for d in deliveries) == [
        (run, n) for run in RUNS for n in range(1, EVENTS_PER_RUN + 1)
    ]
