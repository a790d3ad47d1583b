"""Who is calling: the client address, through trusted proxies only.

Behind a reverse proxy every connection comes from the proxy, so the address that counts is the
one the proxy reports in ``X-Forwarded-For`` (or RFC 7239 ``Forwarded``). A client can write
those headers itself, so they are read only when the connection comes from a configured trusted
proxy (``LORAFORGE_TRUSTED_PROXIES``), and only the hops that trusted proxies appended count:
the chain is walked from the right and the first address that is not a trusted proxy is the
client. ``X-Forwarded-For`` wins when both are present (it is what nearly every proxy sets; a
proxy that sets only ``Forwarded`` must drop a client's ``X-Forwarded-For``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import Scope

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def parse_networks(entries: Iterable[str]) -> list[_Network]:
    """IPs and CIDRs (``10.0.0.0/8``, ``::1``); raises ``ValueError`` on a bad entry."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries]


class TrustedProxies:
    def __init__(self, entries: Iterable[str] = ()) -> None:
        self._networks = parse_networks(entries)

    def client_address(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else UNKNOWN
        if not self._networks or not self.trusted(peer):
            return peer  # a direct client: whatever it wrote in the headers is ignored
        hops = _forwarded_chain(scope["headers"])
        for hop in reversed(hops):
            if not self.trusted(hop):
                return hop
        return hops[0] if hops else peer

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._networks)


def _forwarded_chain(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """The addresses of the hops, client first; repeated header lines join in order."""
    xff = [v.decode("latin-1") for n, v in headers if n == b"x-forwarded-for"]
    if xff:
        return [_node(item) for item in ",".join(xff).split(",") if item.strip()]
    forwarded = [v.decode("latin-1") for n, v in headers if n == b"forwarded"]
    hops: list[str] = []
    for element in ",".join(forwarded).split(","):
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.lower() == "for" and value:
                hops.append(_node(value))
    return hops


def _node(value: str) -> str:
    """``1.2.3.4``, ``1.2.3.4:80``, ``"[2001:db8::1]:80"``, ``2001:db8::1`` → the address."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:  # IPv4 (or a name) with a port
        return value.partition(":")[0]
    return value
