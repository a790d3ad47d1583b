"""Failed authentications are throttled without locking anyone out.

On every surface (native /v1, PhotoGPT, Runware HTTP and WebSocket, Scenario): after
``auth_max_failures`` failures from one address, bad keys from it answer 429 with Retry-After,
while a valid key from that same address still gets through. Behind a trusted proxy the
forwarded address decides; from any other peer forwarding headers are ignored.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from loraforge.app import create_app
from loraforge.bootstrap import Container, build
from loraforge.settings import Settings

MAX = 3
PROXY = "10.9.0.5"


def bad() -> str:
    """A well-formed unknown key, a new one each time (its prefix counts on its own)."""
    return "lf_" + secrets.token_urlsafe(32)


@dataclass
class Throttled:
    app: FastAPI
    container: Container
    key: str

    def client(self, address: str) -> TestClient:
        return TestClient(self.app, client=(address, 40000))


@pytest.fixture
def throttled(settings: Settings) -> Iterator[Throttled]:
    update = {"auth_max_failures": MAX, "trusted_proxies": ["10.9.0.0/16"]}
    container = build(settings.model_copy(update=update))
    try:
        app = create_app(container=container)
        yield Throttled(app, container, container.keys.create(name="t").plaintext)
    finally:
        container.close()


# Each surface: (client, key, extra headers) -> (status, Retry-After or None).
Call = Callable[[TestClient, str, dict[str, str]], tuple[int, str | None]]


def native(client: TestClient, key: str, extra: dict[str, str]) -> tuple[int, str | None]:
    answer = client.get("/v1/models", headers={"Authorization": f"Bearer {key}", **extra})
    return answer.status_code, answer.headers.get("retry-after")


def photogpt(client: TestClient, key: str, extra: dict[str, str]) -> tuple[int, str | None]:
    answer = client.get("/compat/photogpt/models", headers={"X-API-Key": key, **extra})
    return answer.status_code, answer.headers.get("retry-after")


def scenario(client: TestClient, key: str, extra: dict[str, str]) -> tuple[int, str | None]:
    basic = base64.b64encode(f"{key}:{key}".encode()).decode()
    answer = client.get(
        "/compat/scenario/v1/models", headers={"Authorization": f"Basic {basic}", **extra}
    )
    return answer.status_code, answer.headers.get("retry-after")


def runware_http(client: TestClient, key: str, extra: dict[str, str]) -> tuple[int, str | None]:
    answer = client.post(
        "/compat/runware/v1",
        json=[{"taskType": "ping", "ping": True}],
        headers={"Authorization": f"Bearer {key}", **extra},
    )
    return answer.status_code, answer.headers.get("retry-after")


def runware_socket(client: TestClient, key: str, extra: dict[str, str]) -> tuple[int, str | None]:
    with client.websocket_connect("/compat/runware/v1", headers=extra) as socket:
        socket.send_json([{"taskType": "authentication", "apiKey": key}])
        frame = socket.receive_json()
    if "data" in frame:
        return 200, None
    (error,) = frame["errors"]
    return {"invalidApiKey": 401, "rateLimited": 429}.get(error["code"], 0), None


SURFACES = [native, photogpt, scenario, runware_http, runware_socket]


def assert_limited(result: tuple[int, str | None], *, http: bool) -> None:
    status, retry_after = result
    assert status == 429
    if http:
        assert retry_after is not None
        assert 1 <= int(retry_after) <= 61


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.__name__)
def test_over_the_limit_bad_keys_get_429_and_a_valid_key_still_passes(
    throttled: Throttled, surface: Call
) -> None:
    client = throttled.client("198.51.100.7")
    for _ in range(MAX):
        assert surface(client, bad(), {})[0] == 401

    assert_limited(surface(client, bad(), {}), http=surface is not runware_socket)
    assert_limited(surface(client, "lf_malformed", {}), http=surface is not runware_socket)
    assert surface(client, throttled.key, {})[0] == 200
    # Failures on one surface count on every other one, valid keys pass on all of them.
    for other in SURFACES:
        assert other(client, bad(), {})[0] == 429, other.__name__
        assert other(client, throttled.key, {})[0] == 200, other.__name__
    # Another address is not affected.
    assert surface(throttled.client("198.51.100.8"), bad(), {})[0] == 401


def test_failures_per_key_prefix_are_throttled_across_addresses(throttled: Throttled) -> None:
    guesses = [throttled.key[:12] + c * 34 for c in "BCDEFG"]
    for n, guess in enumerate(guesses[:MAX]):
        assert native(throttled.client(f"198.51.100.{n + 20}"), guess, {})[0] == 401

    fresh = throttled.client("198.51.100.99")
    assert_limited(native(fresh, guesses[MAX], {}), http=True)
    assert native(fresh, throttled.key, {})[0] == 200  # the prefix's own key still works


@pytest.mark.parametrize("surface", [native, runware_socket], ids=lambda s: s.__name__)
def test_behind_a_trusted_proxy_the_forwarded_address_decides(
    throttled: Throttled, surface: Call
) -> None:
    proxy = throttled.client(PROXY)
    first = {"X-Forwarded-For": "203.0.113.1"}
    for _ in range(MAX):
        assert surface(proxy, bad(), first)[0] == 401
    assert surface(proxy, bad(), first)[0] == 429

    # Other clients behind the same proxy are unaffected, as is the first one's valid key.
    assert surface(proxy, bad(), {"X-Forwarded-For": "203.0.113.2"})[0] == 401
    assert surface(proxy, throttled.key, first)[0] == 200
    # A client cannot escape by prepending a forged hop: the proxy appended the real one.
    assert surface(proxy, bad(), {"X-Forwarded-For": "8.8.8.8, 203.0.113.1"})[0] == 429


@pytest.mark.parametrize("surface", [native, runware_socket], ids=lambda s: s.__name__)
def test_from_an_untrusted_peer_forwarding_headers_are_ignored(
    throttled: Throttled, surface: Call
) -> None:
    client = throttled.client("198.51.100.7")
    for n in range(MAX):
        forged = {"X-Forwarded-For": f"203.0.113.{n}", "Forwarded": f"for=203.0.113.{n}"}
        assert surface(client, bad(), forged)[0] == 401

    assert surface(client, bad(), {"X-Forwarded-For": "203.0.113.50"})[0] == 429
    # ...and a forged header cannot put the blame on someone else.
    assert surface(throttled.client("198.51.100.8"), bad(), {})[0] == 401
