"""The client address: forwarding headers count only from trusted proxies."""

from __future__ import annotations

import pytest

from loraforge.http.client_address import TrustedProxies
from loraforge.settings import Settings


def scope(peer: str, *headers: tuple[str, str]) -> dict[str, object]:
    raw = [(n.lower().encode(), v.encode()) for n, v in headers]
    return {"type": "http", "client": (peer, 4321), "headers": raw}


PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    forged = ("X-Forwarded-For", "203.0.113.9")
    assert TrustedProxies().client_address(scope("10.1.1.1", forged)) == "10.1.1.1"
    assert PROXIES.client_address(scope("198.51.100.4", forged)) == "198.51.100.4"


@pytest.mark.parametrize(
    ("headers", "client"),
    [
        ((("X-Forwarded-For", "203.0.113.9"),), "203.0.113.9"),
        # The client wrote the leftmost entry itself; the proxy appended what it saw.
        ((("X-Forwarded-For", "1.1.1.1, 203.0.113.9"),), "203.0.113.9"),
        ((("X-Forwarded-For", "1.1.1.1, 203.0.113.9, 10.2.2.2"),), "203.0.113.9"),
        ((("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "203.0.113.9")), "203.0.113.9"),
        ((("Forwarded", 'for=1.1.1.1, for="203.0.113.9:4711";proto=https'),), "203.0.113.9"),
        ((("Forwarded", 'for="[2001:db9::5]:80"'),), "2001:db9::5"),
        ((("X-Forwarded-For", "203.0.113.9"), ("Forwarded", "for=1.1.1.1")), "203.0.113.9"),
        ((("X-Forwarded-For", "10.3.3.3"),), "10.3.3.3"),  # only proxies: the first hop
        ((), "10.1.1.1"),  # a proxy that forwarded nothing: itself
    ],
)
def test_behind_a_trusted_proxy_the_first_untrusted_hop_from_the_right_is_the_client(
    headers: tuple[tuple[str, str], ...], client: str
) -> None:
    assert PROXIES.client_address(scope("10.1.1.1", *headers)) == client


def test_ipv6_and_mapped_peers_are_matched() -> None:
    forwarded = ("X-Forwarded-For", "203.0.113.9")
    assert PROXIES.client_address(scope("2001:db8::1", forwarded)) == "203.0.113.9"
    assert PROXIES.client_address(scope("::ffff:10.0.0.1", forwarded)) == "203.0.113.9"


def test_a_bad_trusted_proxy_entry_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        Settings(trusted_proxies=["10.0.0.0/8", "proxy.local"])
