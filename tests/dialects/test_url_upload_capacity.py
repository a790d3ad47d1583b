"""URL uploads have capacity of their own: slow upstreams never stall the rest of the API.

A real server (uvicorn on a socket, tests/dialects/conftest.py) fetches from a real upstream
whose ``/slow`` answers only when the test says so. The thread-pool effect only shows under
real concurrency: with uploads on the API's default pool of 40 threads, 44 slow fetches left
no thread for ``GET /v1/models``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from loraforge.bootstrap import build
from loraforge.settings import Settings
from tests.dialects.conftest import LiveServer, serving
from tests.dialects.runware.helpers import PATH as RUNWARE
from tests.dialects.runware.helpers import upload_task
from tests.imagefactory import png

PROMPT_S = 2.0  # "at once" on a loaded 2-core machine; a stalled answer takes far longer
SMALL_PNG = png(8, 8)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 resets bursts of connections: fetches end early


class Upstream:
    """``/slow/...`` holds every request until ``release``; ``/fast.png`` answers at once."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.arrived = threading.Condition()
        self.slow_requests = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/slow"):
                    with upstream.arrived:
                        upstream.slow_requests += 1
                        upstream.arrived.notify_all()
                    upstream.released.wait(30)
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(SMALL_PNG)))
                self.end_headers()
                self.wfile.write(SMALL_PNG)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for_slow(self, count: int) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: self.slow_requests >= count, timeout=10)

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


def settings_for(
    tmp_path: Path, database_url: str, upstream: Upstream, *, total: int, per_account: int
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        signing_secret="test-secret",
        blob_sweep_interval_s=0,
        fetch_allow_hosts=[f"127.0.0.1:{upstream.port}"],
        fetch_slots=total,
        fetch_slots_per_account=per_account,
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, upstream: Upstream) -> Settings:
    return settings_for(tmp_path, database_url, upstream, total=8, per_account=2)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def url_upload(client: httpx.Client, key: str, url: str) -> httpx.Response:
    body = {"image": url, "type": "auxiliaryType"}
    return client.post("/v1/images", json=body, headers=bearer(key))


def start_slow_uploads(
    pool: ThreadPoolExecutor, client: httpx.Client, keys: list[str], upstream: Upstream
) -> list[Future[httpx.Response]]:
    started = [
        pool.submit(url_upload, client, key, upstream.url(f"/slow/{n}"))
        for n, key in enumerate(keys)
    ]
    upstream.wait_for_slow(len(keys))  # every one is fetching now
    assert not any(upload.done() for upload in started)
    return started


def timed(call: Any) -> tuple[Any, float]:
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    # Slow uploads wait for the upstream; the prompt checks give up long before a stall ends.
    with httpx.Client(base_url=live_server.base_url, timeout=30, limits=limits) as c:
        yield c


def test_an_account_past_its_fetch_share_gets_429_and_others_carry_on(
    live_server: LiveServer, client: httpx.Client, upstream: Upstream
) -> None:
    key = live_server.key
    with ThreadPoolExecutor(2) as pool:
        slow = start_slow_uploads(pool, client, [key, key], upstream)

        response, took = timed(lambda: url_upload(client, key, upstream.url("/fast.png")))
        assert response.status_code == 429, response.text
        assert took < PROMPT_S
        assert response.json()["error"]["code"] == "rate_limited"
        assert response.headers["Retry-After"] == "10"  # one fetch deadline

        # The same account's reads, and another account's URL upload, are not held up.
        models, took = timed(lambda: client.get("/v1/models", headers=bearer(key), timeout=5))
        assert models.status_code == 200
        assert took < PROMPT_S
        other = live_server.new_key()
        image, took = timed(lambda: url_upload(client, other, upstream.url("/fast.png")))
        assert image.status_code == 201, image.text
        assert took < PROMPT_S

        upstream.released.set()
        assert [f.result().status_code for f in slow] == [422, 422]  # the upstream said 404
    # Slots are freed when uploads end: the account may fetch again.
    assert url_upload(client, key, upstream.url("/fast.png")).status_code == 201


def test_runware_url_uploads_past_the_share_get_429_over_http_and_websocket(
    live_server: LiveServer, client: httpx.Client, upstream: Upstream
) -> None:
    key = live_server.key
    with ThreadPoolExecutor(2) as pool:
        slow = start_slow_uploads(pool, client, [key, key], upstream)

        task = upload_task(upstream.url("/fast.png"))
        http, took = timed(lambda: client.post(RUNWARE, json=[task], headers=bearer(key)))
        assert http.status_code == 429
        assert took < PROMPT_S
        assert http.headers["Retry-After"] == "10"
        error = http.json()["errors"][0]
        assert (error["code"], error["retryAfter"], error["taskUUID"]) == (
            "rateLimited",
            10,
            task["taskUUID"],
        )

        with connect(live_server.ws_url(RUNWARE), open_timeout=5) as ws:
            ws.send(json.dumps([{"taskType": "authentication", "apiKey": key}]))
            assert "data" in json.loads(ws.recv(timeout=5))
            ws.send(json.dumps([upload_task(upstream.url("/fast.png"))]))
            frame = json.loads(ws.recv(timeout=PROMPT_S))
        assert frame["errors"][0]["code"] == "rateLimited"
        assert frame["errors"][0]["retryAfter"] == 10

        upstream.released.set()
        assert [f.result().status_code for f in slow] == [422, 422]


def test_slow_fetches_never_starve_reads_and_a_full_process_answers_503(
    tmp_path: Path, database_url: str, upstream: Upstream
) -> None:
    # 11 accounts x 4 slow fetches: more than the 40 threads of the API's default pool.
    settings = settings_for(tmp_path, database_url, upstream, total=44, per_account=4)
    container = build(settings)
    try:
        with serving(container) as live, httpx.Client(base_url=live.base_url, timeout=30) as c:
            accounts = [live.new_key() for _ in range(11)]
            keys = [key for key in accounts for _ in range(4)]
            with ThreadPoolExecutor(len(keys)) as pool:
                slow = start_slow_uploads(pool, c, keys, upstream)

                models, took = timed(
                    lambda: c.get("/v1/models", headers=bearer(accounts[0]), timeout=5)
                )
                assert models.status_code == 200
                assert took < PROMPT_S

                full, took = timed(lambda: url_upload(c, live.key, upstream.url("/fast.png")))
                assert full.status_code == 503, full.text
                assert took < PROMPT_S
                assert full.json()["error"]["code"] == "unavailable"
                assert full.headers["Retry-After"] == "10"

                upstream.released.set()
                assert {f.result().status_code for f in slow} == {422}
    finally:
        container.close()
