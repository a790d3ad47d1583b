"""FastAPI dependencies: the container, the calling principal, and the signed links of the
request (what presenters are given to write image URLs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from loraforge.bootstrap import Container
from loraforge.domain.entities import Principal
from loraforge.domain.errors import Unauthenticated
from loraforge.http.client_address import TrustedProxies
from loraforge.http.links import ImageLinks
from loraforge.services.keys import PREFIX_LEN


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def presented_key(request: Request) -> str | None:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; never the query string."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def client_id(request: Request) -> str:
    """The client's address; forwarding headers count only from trusted proxies."""
    proxies: TrustedProxies | None = getattr(request.app.state, "trusted_proxies", None)
    return (proxies or TrustedProxies()).client_address(request.scope)


async def authenticate(request: Request, key: str | None) -> Principal:
    """Check a key; failures count per client address and per key prefix.

    A valid key always gets through, even from an address (or for a prefix) over the limit:
    only failures answer 429 there, so nobody can lock other users out by failing on purpose
    (behind a proxy or NAT everyone shares one address). A rejected key costs little, however
    many are sent: a malformed key is refused without a hash or a database lookup, and a
    well-formed key that already failed without a lookup (``KeyService.authenticate``).
    """
    container = get_container(request)
    names = [f"address:{client_id(request)}"]
    if key:
        names.append(f"prefix:{key[:PREFIX_LEN]}")
    try:
        return await run_in_threadpool(container.keys.authenticate, key)
    except Unauthenticated:
        try:
            container.auth_failures.check(*names)  # over the limit: 429, not 401
        finally:
            container.auth_failures.record_failure(*names)
        raise


async def get_principal(request: Request) -> Principal:
    return await authenticate(request, presented_key(request))


def public_base(request: Request, container: Container) -> str:
    configured = container.settings.public_url
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def image_links(request: Request) -> ImageLinks:
    container = get_container(request)
    return ImageLinks(base=public_base(request, container), signer=container.links)


ContainerDep = Annotated[Container, Depends(get_container)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
LinksDep = Annotated[ImageLinks, Depends(image_links)]
