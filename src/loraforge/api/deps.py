"""FastAPI dependencies: the container, and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from loraforge.bootstrap import Container
from loraforge.domain.entities import Principal
from loraforge.domain.errors import Unauthenticated


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
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, key: str | None) -> Principal:
    """Check a key, counting failures per client so guessing gets 429."""
    container = get_container(request)
    client = client_id(request)
    container.auth_failures.check(client)
    try:
        return await run_in_threadpool(container.keys.authenticate, key)
    except Unauthenticated:
        container.auth_failures.record_failure(client)
        raise


async def get_principal(request: Request) -> Principal:
    return await authenticate(request, presented_key(request))


ContainerDep = Annotated[Container, Depends(get_container)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
