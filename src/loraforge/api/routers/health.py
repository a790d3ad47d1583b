"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from loraforge.api.deps import ContainerDep
from loraforge.api.errors import error_body
from loraforge.api.schemas.common import ErrorBody
from loraforge.domain.errors import Unavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz", responses={503: {"model": ErrorBody, "description": "A dependency is down."}}
)
async def readyz(c: ContainerDep) -> JSONResponse:
    """The database and the blob store answer."""
    try:
        await run_in_threadpool(c.uow.check)
        await run_in_threadpool(c.blobs.check)
    except Unavailable as exc:
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=503, headers={"Retry-After": "5"}
        )
    return JSONResponse({"status": "ok", "database": "ok", "blobStore": "ok"})
