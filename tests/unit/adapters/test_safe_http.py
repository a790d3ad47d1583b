"""SafeHttpFetcher: SSRF rules, redirects, byte/time caps and the uniform error.

Only 127.0.0.1 is ever connected to. Public names are mapped by an injected resolver and are
refused (or intercepted) before any connection, which ``connections`` proves.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from loraforge.adapters.fetch.safe_http import (
    FAILURE_MESSAGE,
    Resolver,
    SafeHttpFetcher,
    is_public_address,
)
from loraforge.domain.errors import FetchFailed

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700::1111"
BODY = b"\x89PNG fake image bytes " * 50


class FakeDns:
    """Resolver double: fixed answers, records lookups, unknown names fail like real DNS."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {}
        self.lookups: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """A pytest-httpserver bound to 127.0.0.1 (the plain fixture may pick ::1 for localhost)."""
    return httpserver_ipv4


@pytest.fixture
def canary() -> Iterator[socket.socket]:
    """A listening socket nobody may reach; a completed handshake would sit in its queue."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every outgoing TCP connection httpx (httpcore's sync backend) opens, by address."""
    opened: list[tuple[str, int]] = []
    real = socket.create_connection

    def spy(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return opened


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets slow handlers finish at teardown, so the single-threaded server is free again."""
    event = threading.Event()
    yield event
    event.set()


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def assert_never_contacted(canary: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        canary.accept()


def allowing(server: HTTPServer, **kwargs: Any) -> SafeHttpFetcher:
    return SafeHttpFetcher(allow_hosts=frozenset({f"127.0.0.1:{server.port}"}), **kwargs)


def fetch_bytes(fetcher: SafeHttpFetcher, url: str, max_bytes: int = 10_000) -> bytes:
    with fetcher.fetch(url, max_bytes=max_bytes) as stream:
        assert stream.tell() == 0
        return stream.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return port_of(sock)


# --- success and redirects -------------------------------------------------------------------


def test_fetches_allow_listed_server(server: HTTPServer) -> None:
    server.expect_request("/img.png").respond_with_data(BODY, content_type="image/png")

    assert fetch_bytes(allowing(server), server.url_for("/img.png"), len(BODY)) == BODY
    request, _ = server.log[0]
    assert request.headers["User-Agent"] == "loraforge"
    assert request.headers["Accept-Encoding"] == "identity"


def test_allow_list_by_name_reaches_local_server(server: HTTPServer) -> None:
    server.expect_request("/x").respond_with_data(BODY)
    fetcher = SafeHttpFetcher(allow_hosts=frozenset({f"localhost:{server.port}"}))

    assert fetch_bytes(fetcher, f"http://localhost:{server.port}/x") == BODY


def test_follows_redirect_chain_to_allowed_target(server: HTTPServer) -> None:
    server.expect_request("/a").respond_with_data(status=302, headers={"Location": "/b"})
    absolute = server.url_for("/c")
    server.expect_request("/b").respond_with_data(status=301, headers={"Location": absolute})
    server.expect_request("/c").respond_with_data(BODY)

    assert fetch_bytes(allowing(server), server.url_for("/a")) == BODY
    assert [request.path for request, _ in server.log] == ["/a", "/b", "/c"]


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{canary}/",
        "http://localhost:{canary}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://internal.test/admin",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_blocked_target_is_refused_without_contacting_it(
    server: HTTPServer,
    canary: socket.socket,
    connections: list[tuple[str, int]],
    location: str,
) -> None:
    target = location.format(canary=port_of(canary))
    server.expect_request("/start").respond_with_data(status=302, headers={"Location": target})
    dns = FakeDns({"localhost": ["127.0.0.1"], "internal.test": ["10.0.0.7"]})

    with pytest.raises(FetchFailed):
        allowing(server, resolver=dns).fetch(server.url_for("/start"), max_bytes=10_000)

    assert connections == [("127.0.0.1", server.port)]
    assert_never_contacted(canary)


def test_too_many_redirects_are_refused(server: HTTPServer) -> None:
    server.expect_request("/loop").respond_with_data(status=307, headers={"Location": "/loop"})

    with pytest.raises(FetchFailed):
        allowing(server, max_redirects=3).fetch(server.url_for("/loop"), max_bytes=10_000)

    assert len(server.log) == 4  # the first request plus three followed redirects


def test_proxy_environment_is_ignored(
    server: HTTPServer, canary: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{port_of(canary)}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    server.expect_request("/x").respond_with_data(BODY)

    assert fetch_bytes(allowing(server), server.url_for("/x")) == BODY
    assert_never_contacted(canary)


# --- blocked targets are never contacted ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "answers"),
    [
        ("http://127.0.0.1:{port}/", {}),
        ("http://localhost:{port}/", {"localhost": ["127.0.0.1"]}),
        ("http://rebind.test:{port}/", {"rebind.test": ["127.0.0.1"]}),
        ("http://rebind.test/", {"rebind.test": ["127.0.0.1"]}),
        ("http://mixed.test/", {"mixed.test": [PUBLIC_V4, "10.0.0.1"]}),
        ("https://mixed.test/", {"mixed.test": [PUBLIC_V6, "fd00::1"]}),
        ("http://[::1]/", {}),
        ("http://[::ffff:127.0.0.1]/", {}),
        ("http://0.0.0.0/", {}),
        ("http://169.254.169.254/latest/meta-data/", {}),
    ],
)
def test_blocked_targets_are_never_contacted(
    canary: socket.socket,
    connections: list[tuple[str, int]],
    url: str,
    answers: dict[str, list[str]],
) -> None:
    fetcher = SafeHttpFetcher(resolver=FakeDns(answers))

    with pytest.raises(FetchFailed):
        fetcher.fetch(url.format(port=port_of(canary)), max_bytes=10_000)

    assert connections == []
    assert_never_contacted(canary)


def test_local_http_server_not_allow_listed_gets_no_request(
    server: HTTPServer, connections: list[tuple[str, int]]
) -> None:
    server.expect_request("/").respond_with_data(b"internal secret")

    with pytest.raises(FetchFailed):
        SafeHttpFetcher().fetch(server.url_for("/"), max_bytes=10_000)

    assert server.log == []
    assert connections == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address under test, nothing binds to it
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
        "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
        "not-an-ip",
    ],
)
def test_classifier_blocks_non_global_addresses(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "8.8.8.8"])
def test_classifier_allows_global_addresses(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/image.png",
        "gopher://example.com:70/_HELO",
        "http://user:secret@example.com/image.png",
        "https://user@example.com/image.png",
        "http://example.com:8080/image.png",
        "https://example.com:8443/image.png",
        "http://example.com:443/image.png",
        "http:///image.png",
        "not a url",
    ],
)
def test_url_rules_refuse_before_connecting(url: str, connections: list[tuple[str, int]]) -> None:
    dns = FakeDns({"example.com": [PUBLIC_V4]})

    with pytest.raises(FetchFailed):
        SafeHttpFetcher(resolver=dns).fetch(url, max_bytes=10_000)

    assert connections == []


def test_dns_failure_is_a_fetch_failure(connections: list[tuple[str, int]]) -> None:
    with pytest.raises(FetchFailed):
        SafeHttpFetcher(resolver=FakeDns()).fetch("http://nx.test/", max_bytes=10)
    assert connections == []


@pytest.mark.parametrize(
    ("url", "address", "expected_url"),
    [
        ("https://images.example.com/a.png?x=1", PUBLIC_V4, f"https://{PUBLIC_V4}/a.png?x=1"),
        ("https://images.example.com/a.png", PUBLIC_V6, f"https://[{PUBLIC_V6}]/a.png"),
    ],
)
def test_connects_to_checked_address_and_keeps_the_name_for_host_and_tls(
    monkeypatch: pytest.MonkeyPatch, url: str, address: str, expected_url: str
) -> None:
    # No internet here: intercept the send and inspect what would go on the wire.
    sent: list[httpx.Request] = []

    def fake_send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=BODY, request=request)

    monkeypatch.setattr(httpx.Client, "send", fake_send)
    dns = FakeDns({"images.example.com": [address]})

    assert fetch_bytes(SafeHttpFetcher(resolver=dns), url) == BODY

    (request,) = sent
    assert str(request.url) == expected_url
    assert request.headers["Host"] == "images.example.com"
    assert request.extensions["sni_hostname"] == "images.example.com"
    assert dns.lookups == [("images.example.com", 443)]  # one lookup: no second, rebindable one


# --- byte and time caps -----------------------------------------------------------------------


def test_body_of_exactly_max_bytes_is_accepted(server: HTTPServer) -> None:
    server.expect_request("/x").respond_with_data(BODY)
    assert fetch_bytes(allowing(server), server.url_for("/x"), len(BODY)) == BODY


def test_declared_content_length_over_limit_is_refused(server: HTTPServer) -> None:
    server.expect_request("/big").respond_with_data(BODY)

    with pytest.raises(FetchFailed):
        allowing(server).fetch(server.url_for("/big"), max_bytes=len(BODY) - 1)


def test_streamed_body_over_limit_is_refused(server: HTTPServer) -> None:
    def endless() -> Iterator[bytes]:
        for _ in range(1000):
            yield b"x" * 1024

    server.expect_request("/stream").respond_with_handler(lambda _request: Response(endless()))
    url = server.url_for("/stream")
    with httpx.stream("GET", url, trust_env=False) as probe:  # no Content-Length to rely on
        assert "content-length" not in probe.headers

    with pytest.raises(FetchFailed):
        allowing(server).fetch(url, max_bytes=10_000)


def test_compressed_body_is_refused(server: HTTPServer) -> None:
    # A compressed body could inflate far past max_bytes within a single chunk.
    server.expect_request("/gz").respond_with_data(
        b"\x1f\x8b", headers={"Content-Encoding": "gzip"}
    )

    with pytest.raises(FetchFailed):
        allowing(server).fetch(server.url_for("/gz"), max_bytes=10_000)


def slow_headers(release: threading.Event) -> Callable[[Request], Response]:
    def handler(_request: Request) -> Response:
        release.wait(5)
        return Response(b"late")

    return handler


def trickle(release: threading.Event) -> Callable[[Request], Response]:
    """Sends a byte every 0.1 s: each read is quick, only the overall deadline stops it."""

    def body() -> Iterator[bytes]:
        while not release.wait(0.1):
            yield b"x"

    return lambda _request: Response(body())


@pytest.mark.parametrize("make_handler", [slow_headers, trickle])
def test_total_time_is_capped(
    server: HTTPServer,
    release: threading.Event,
    make_handler: Callable[[threading.Event], Callable[[Request], Response]],
) -> None:
    server.expect_request("/slow").respond_with_handler(make_handler(release))
    fetcher = allowing(server, total_timeout_s=0.5)

    started = time.monotonic()
    with pytest.raises(FetchFailed):
        fetcher.fetch(server.url_for("/slow"), max_bytes=1_000_000)
    elapsed = time.monotonic() - started

    assert 0.4 <= elapsed < 1.5


def test_deadline_covers_redirect_hops(server: HTTPServer, release: threading.Event) -> None:
    server.expect_request("/a").respond_with_data(status=302, headers={"Location": "/slow"})
    server.expect_request("/slow").respond_with_handler(slow_headers(release))

    started = time.monotonic()
    with pytest.raises(FetchFailed):
        allowing(server, total_timeout_s=0.5).fetch(server.url_for("/a"), max_bytes=100)
    assert time.monotonic() - started < 1.5


# --- status codes and the uniform error --------------------------------------------------------


@pytest.mark.parametrize("status", [304, 400, 403, 404, 500, 503])
def test_non_2xx_is_refused(server: HTTPServer, status: int) -> None:
    server.expect_request("/x").respond_with_data(b"nope", status=status)

    with pytest.raises(FetchFailed):
        allowing(server).fetch(server.url_for("/x"), max_bytes=10_000)


def test_every_failure_has_the_same_message_and_never_echoes_the_body(
    server: HTTPServer, canary: socket.socket, release: threading.Event
) -> None:
    server.expect_request("/error").respond_with_data(b"SECRET internal trace", status=500)
    server.expect_request("/big").respond_with_data(b"SECRET" * 100)
    server.expect_request("/slow").respond_with_handler(slow_headers(release))
    closed = free_port()
    fetcher = SafeHttpFetcher(
        total_timeout_s=0.5,
        allow_hosts=frozenset({f"127.0.0.1:{server.port}", f"127.0.0.1:{closed}"}),
    )
    attempts = {
        "blocked": f"http://127.0.0.1:{port_of(canary)}/",
        "refused": f"http://127.0.0.1:{closed}/",
        "non_2xx": server.url_for("/error"),
        "too_large": server.url_for("/big"),
        "timeout": server.url_for("/slow"),
    }

    errors: dict[str, FetchFailed] = {}
    for name, url in attempts.items():
        with pytest.raises(FetchFailed) as caught:
            fetcher.fetch(url, max_bytes=100)
        errors[name] = caught.value

    assert {str(error) for error in errors.values()} == {FAILURE_MESSAGE}
    assert {error.code for error in errors.values()} == {"fetch_failed"}
    assert all(error.__cause__ is not None for error in errors.values())
    assert not any("SECRET" in repr(error.args) for error in errors.values())


# --- post_json (webhooks) -----------------------------------------------------------------------


def test_post_json_delivers_body_and_headers(server: HTTPServer) -> None:
    payload = b'{"event": "training.succeeded"}'
    server.expect_request(
        "/hook",
        method="POST",
        data=payload,
        headers={"X-Signature": "sha256=abc", "Content-Type": "application/json"},
    ).respond_with_data(status=202)

    status = allowing(server).post_json(
        server.url_for("/hook"), payload, {"X-Signature": "sha256=abc"}
    )

    assert status == 202
    server.check_assertions()


@pytest.mark.parametrize("answer", [500, 302])
def test_post_json_returns_status_without_following_redirects(
    server: HTTPServer, answer: int
) -> None:
    server.expect_request("/hook", method="POST").respond_with_data(
        status=answer, headers={"Location": "/elsewhere"}
    )

    assert allowing(server).post_json(server.url_for("/hook"), b"{}", {}) == answer
    assert len(server.log) == 1


def test_post_json_to_non_allow_listed_local_server_is_blocked(
    server: HTTPServer, connections: list[tuple[str, int]]
) -> None:
    server.expect_request("/hook", method="POST").respond_with_data(status=200)
    dns: Resolver = FakeDns({"hooks.test": ["192.168.0.10"]})

    with pytest.raises(FetchFailed, match=FAILURE_MESSAGE):
        SafeHttpFetcher(resolver=dns).post_json(server.url_for("/hook"), b"{}", {})
    with pytest.raises(FetchFailed, match=FAILURE_MESSAGE):
        SafeHttpFetcher(resolver=dns).post_json("https://hooks.test/hook", b"{}", {})

    assert server.log == []
    assert connections == []


def test_post_json_connection_refused_and_timeout_fail_uniformly(
    server: HTTPServer, release: threading.Event
) -> None:
    server.expect_request("/hook", method="POST").respond_with_handler(slow_headers(release))
    closed = free_port()
    fetcher = SafeHttpFetcher(
        total_timeout_s=0.5,
        allow_hosts=frozenset({f"127.0.0.1:{server.port}", f"127.0.0.1:{closed}"}),
    )

    for url in (f"http://127.0.0.1:{closed}/hook", server.url_for("/hook")):
        with pytest.raises(FetchFailed) as caught:
            fetcher.post_json(url, b"{}", {})
        assert str(caught.value) == FAILURE_MESSAGE


# --- the deadline is hard: trickling upstreams (raw sockets) ------------------------------------

Route = Callable[[str], tuple[bytes, bytes]]
"""path -> (status line and headers, body)"""


class TrickleServer:
    """A raw TCP server: each connection reads the request head, then sends the route's head
    one byte per ``head_interval`` s and its body one byte per ``body_interval`` s, for at
    most ``LIMIT`` s. httpx's per-read timeouts never fire on it; only a deadline over the
    whole fetch stops the client."""

    LIMIT = 5.0

    def __init__(self, route: Route, *, head_interval: float, body_interval: float) -> None:
        self.route = route
        self.intervals = (head_interval, body_interval)
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = port_of(self.sock)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the accept timeout, or the socket closed at teardown
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            head, body = self.route(request.split(b" ", 2)[1].decode())
            until = time.monotonic() + self.LIMIT
            for part, interval in zip((head, body), self.intervals, strict=True):
                for byte in part:
                    if self.stop.wait(interval) or time.monotonic() > until:
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return  # the client gave up: what the deadline is for

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fetcher(self, timeout: float) -> SafeHttpFetcher:
        allowed = frozenset({f"127.0.0.1:{self.port}"})
        return SafeHttpFetcher(total_timeout_s=timeout, allow_hosts=allowed)


@contextmanager
def trickling(
    route: Route, *, head_interval: float, body_interval: float
) -> Iterator[TrickleServer]:
    server = TrickleServer(route, head_interval=head_interval, body_interval=body_interval)
    try:
        yield server
    finally:
        server.stop.set()
        server.sock.close()


def timed_failure(fetcher: SafeHttpFetcher, url: str) -> float:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match=FAILURE_MESSAGE):
        fetcher.fetch(url, max_bytes=1_000_000)
    return time.monotonic() - started


TIMEOUT = 1.0
SLACK = 0.35  # scheduling on a loaded 2-core machine; the old code overshot by seconds
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"


def test_trickled_headers_stop_at_the_deadline() -> None:
    # One header byte every 0.2 s: every read is quick, the headers would take 20 s.
    head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    with trickling(lambda _: (head, b""), head_interval=0.2, body_interval=0) as upstream:
        elapsed = timed_failure(upstream.fetcher(TIMEOUT), upstream.url("/img"))
    assert TIMEOUT - 0.05 <= elapsed < TIMEOUT + SLACK


def test_trickled_body_stops_at_the_deadline() -> None:
    # A body byte every 0.9 s: a read that starts just before the deadline must not wait for
    # the next byte (a per-read timeout would, and overshoot by up to a whole timeout).
    with trickling(lambda _: (OK_HEAD, b"x" * 100), head_interval=0, body_interval=0.9) as upstream:
        elapsed = timed_failure(upstream.fetcher(TIMEOUT), upstream.url("/img"))
    assert TIMEOUT - 0.05 <= elapsed < TIMEOUT + SLACK


def test_slow_redirect_hops_share_one_deadline() -> None:
    # Each hop's head takes ~0.85 s (85 bytes, one per 0.01 s): each hop alone is within the
    # timeout, the chain is not. The deadline covers every hop and cuts the one in progress.
    def route(path: str) -> tuple[bytes, bytes]:
        hop = int(path.rsplit("/", 1)[-1])
        head = f"HTTP/1.1 302 Found\r\nLocation: /hop/{hop + 1}\r\nContent-Length: 0\r\n"
        return f"{head}X-Pad: ".encode().ljust(81, b"p") + b"\r\n\r\n", b""

    with trickling(route, head_interval=0.01, body_interval=0) as upstream:
        elapsed = timed_failure(upstream.fetcher(TIMEOUT), upstream.url("/hop/0"))
    assert TIMEOUT - 0.05 <= elapsed < TIMEOUT + SLACK


def test_slow_dns_stops_at_the_deadline(release: threading.Event) -> None:
    def stalled(host: str, port: int) -> list[str]:
        release.wait(5)  # getaddrinfo has no timeout of its own
        return [PUBLIC_V4]

    fetcher = SafeHttpFetcher(total_timeout_s=TIMEOUT, resolver=stalled)
    assert timed_failure(fetcher, "http://slow-dns.test/img.png") < TIMEOUT + SLACK
