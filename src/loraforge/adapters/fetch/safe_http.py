"""SSRF-guarded HTTP client for user-supplied URLs (image ingestion, webhook delivery).

Every hop is checked before any byte leaves the machine: scheme, port, credentials and every
address the name resolves to. The connection then goes to the address that was checked, so a
second DNS answer (rebinding) cannot redirect it. Callers see a single generic error whatever
went wrong, so the fetcher cannot be used to map the internal network.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, cast

import httpx

from loraforge.adapters.fetch.deadline import DeadlineTransport
from loraforge.domain.errors import FetchFailed

__all__ = ["FAILURE_MESSAGE", "Resolver", "SafeHttpFetcher", "is_public_address"]

_log = logging.getLogger(__name__)

FAILURE_MESSAGE = "The URL could not be fetched."
"""The only message callers ever see; the specific reason is logged at debug level."""

Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> IP address strings``; injectable so tests never touch real DNS."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SPOOL_IN_MEMORY = 1024 * 1024  # bodies above this go to a temp file instead of RAM
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Refused(Exception):
    """Internal failure with a specific reason; only logged and chained, never shown."""


def is_public_address(address: str) -> bool:
    """True when ``address`` is a globally routable unicast IP that is safe to connect to."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that IPv4 host: judge the embedded one too.
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if any(inner is not None and not _is_public(inner) for inner in embedded):
            return False
    return _is_public(ip)


def _is_public(ip: _IPAddress) -> bool:
    # ``is_global`` alone is not enough on Python 3.11: multicast (224/4, ff00::/8) counts as
    # global there, so the special ranges are excluded explicitly as well.
    special = (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )
    return ip.is_global and not special


def _system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class _Target:
    """A checked hop: what to connect to, and the name the server and TLS must see."""

    url: httpx.URL
    host_header: str
    sni_hostname: str | None


# Everything that can go wrong on the way; all of it becomes the same FetchFailed.
_FAILURES = (_Refused, httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError)


def _failure(action: str, exc: Exception) -> FetchFailed:
    """The uniform error; the specific reason only goes to the debug log (and ``__cause__``)."""
    _log.debug("%s refused: %s: %s", action, type(exc).__name__, exc)
    return FetchFailed(FAILURE_MESSAGE)


class SafeHttpFetcher:
    """``UrlFetcher`` for untrusted URLs, plus ``post_json`` for webhooks, under the same rules."""

    def __init__(
        self,
        *,
        total_timeout_s: float = 10.0,
        max_redirects: int = 3,
        allow_hosts: frozenset[str] = frozenset(),
        resolver: Resolver | None = None,
        user_agent: str = "loraforge",
    ) -> None:
        if total_timeout_s <= 0 or max_redirects < 0:
            raise ValueError("total_timeout_s must be > 0 and max_redirects >= 0")
        self._total_timeout_s = total_timeout_s
        self._max_redirects = max_redirects
        # Operator-configured ``host:port`` pairs (``[::1]:8123`` for IPv6) that may be
        # private and on any port; meant for local services and test servers.
        self._allow_hosts = frozenset(entry.lower() for entry in allow_hosts)
        self._resolve = resolver or _system_resolver
        self._user_agent = user_agent

    def fetch(self, url: str, *, max_bytes: int) -> BinaryIO:
        """Return the body of a 2xx answer as a seekable stream at 0; else ``FetchFailed``."""
        try:
            return self._fetch(url, max_bytes)
        except _FAILURES as exc:
            raise _failure("fetch", exc) from exc

    def post_json(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` without following redirects and return the status code.

        Non-2xx answers are returned, not raised: retry policy is the caller's business.
        Blocked, refused and timed-out deliveries raise ``FetchFailed``.
        """
        deadline = time.monotonic() + self._total_timeout_s
        # Case-insensitive merge: a caller's ``content-type`` replaces the default, never joins
        # it (a dict merge sent Content-Type twice).
        merged = httpx.Headers({"Content-Type": "application/json"})
        merged.update(headers)
        try:
            with (
                self._client(deadline) as client,
                self._send(client, "POST", httpx.URL(url), deadline, body, merged) as response,
            ):
                return response.status_code
        except _FAILURES as exc:
            raise _failure("post", exc) from exc

    def _fetch(self, url: str, max_bytes: int) -> BinaryIO:
        deadline = time.monotonic() + self._total_timeout_s
        current = httpx.URL(url)
        with self._client(deadline) as client:
            for _hop in range(self._max_redirects + 1):
                with self._send(client, "GET", current, deadline) as response:
                    if response.status_code in _REDIRECT_STATUSES:
                        current = _next_hop(current, response)
                        continue
                    if not response.is_success:
                        raise _Refused(f"status {response.status_code}")
                    return _read_capped(response, max_bytes=max_bytes, deadline=deadline)
        raise _Refused(f"more than {self._max_redirects} redirects")

    def _client(self, deadline: float) -> httpx.Client:
        # trust_env=False and a transport of our own: an HTTP(S)_PROXY variable must not route
        # user URLs through a proxy that would do its own (unchecked) resolution. The transport
        # makes the deadline hard: no connect, read or write of any hop runs past it, however
        # slowly the upstream trickles. Redirects are followed by hand so every hop goes
        # through ``_check``.
        return httpx.Client(
            transport=DeadlineTransport(deadline), trust_env=False, follow_redirects=False
        )

    @contextmanager
    def _send(
        self,
        client: httpx.Client,
        method: str,
        url: httpx.URL,
        deadline: float,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """Check one hop, then send to the checked address with a timeout within the deadline."""
        target = self._check(url, deadline)
        remaining = deadline - time.monotonic()  # after _check: DNS time counts too
        if remaining <= 0:
            raise _Refused("deadline passed before connecting")
        merged = httpx.Headers({"User-Agent": self._user_agent, "Accept-Encoding": "identity"})
        merged.update(headers or {})
        # Forced last: the pinned URL carries the IP, the server must still see the name.
        merged["Host"] = target.host_header
        request = client.build_request(
            method,
            target.url,
            content=content,
            headers=merged,
            timeout=httpx.Timeout(remaining),
            # TLS must verify the certificate against the name, not the pinned IP.
            extensions={"sni_hostname": target.sni_hostname} if target.sni_hostname else None,
        )
        response = client.send(request, stream=True)
        try:
            yield response
        finally:
            response.close()

    def _check(self, url: httpx.URL, deadline: float) -> _Target:
        """Apply the URL and address rules; return where to connect."""
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise _Refused(f"scheme {scheme!r}")
        if url.userinfo:
            raise _Refused("credentials in URL")
        host = url.raw_host.decode("ascii")  # IDNA form: what DNS and TLS see
        if not host:
            raise _Refused("no host")
        port = url.port or _DEFAULT_PORTS[scheme]
        host_header = url.netloc.decode("ascii")
        bracketed = f"[{host}]" if ":" in host else host
        if f"{bracketed}:{port}".lower() in self._allow_hosts:
            # Trusted by configuration: connect by name (e.g. localhost -> ::1 then 127.0.0.1).
            return _Target(url, host_header, None)
        if port != _DEFAULT_PORTS[scheme]:
            raise _Refused(f"port {port}")
        addresses = self._addresses(host, port, deadline)
        blocked = [address for address in addresses if not is_public_address(address)]
        if not addresses or blocked:
            raise _Refused(f"{host} resolves to non-public {blocked or 'nothing'}")
        pinned = url.copy_with(host=addresses[0])
        return _Target(pinned, host_header, host if scheme == "https" else None)

    def _addresses(self, host: str, port: int, deadline: float) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]  # an IP literal needs no lookup
        except ValueError:
            return _resolve_by(self._resolve, host, port, deadline)


def _resolve_by(resolve: Resolver, host: str, port: int, deadline: float) -> list[str]:
    """``resolve`` within the deadline: getaddrinfo has no timeout of its own, so a slow DNS
    server would otherwise hold the fetch. A late lookup is abandoned; its daemon thread ends
    when the resolver's own retries give up."""
    answer: list[list[str] | BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append(list(resolve(host, port)))
        except BaseException as exc:  # handed to the caller below
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="fetch-dns", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise _Refused(f"DNS lookup of {host} passed the deadline")
    result = answer[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _next_hop(current: httpx.URL, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("Location")
    if not location:
        raise _Refused(f"redirect {response.status_code} without Location")
    # Relative to the URL as the user named it (host name, not the pinned IP).
    return current.join(location)


def _read_capped(response: httpx.Response, *, max_bytes: int, deadline: float) -> BinaryIO:
    """Stream the body into a spooled file, enforcing the byte cap and the overall deadline."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _Refused(f"Content-Length {declared} > {max_bytes}")
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # We asked for identity; decoding would let one small chunk inflate far past the cap.
        raise _Refused(f"Content-Encoding {encoding!r}")
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    try:
        received = 0
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > max_bytes:
                raise _Refused(f"body over {max_bytes} bytes")
            # Read timeouts are per read; a slow trickle is stopped by the overall deadline.
            if time.monotonic() > deadline:
                raise _Refused("deadline passed while reading")
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return cast(BinaryIO, spool)
