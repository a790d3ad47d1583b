"""Liveness and readiness."""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from loraforge.api.errors import error_body
from loraforge.api.schemas.common import ErrorBody
from loraforge.domain.errors import Unavailable
from loraforge.http.deps import ContainerDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    # ``async`` though it awaits nothing: it answers on the event loop, so liveness holds
    # while every worker thread is busy (a plain ``def`` would queue for one).
    return {"status": "ok"}


@router.get(
    "/readyz", responses={503: {"model": ErrorBody, "description": "A dependency is down."}}
)
async def readyz(c: ContainerDep) -> JSONResponse:
    """The database and the blob store answer, within ``ready_timeout_s``."""
    limit = c.settings.ready_timeout_s
    try:
        # A hard deadline: a check stuck on a hung dependency, or waiting for a thread while
        # every request thread is busy, still gives an answer in time (the check's thread is
        # left to end by its own time limits).
        with anyio.fail_after(limit):
            await anyio.to_thread.run_sync(c.uow.check, abandon_on_cancel=True)
            await anyio.to_thread.run_sync(c.blobs.check, abandon_on_cancel=True)
    except Unavailable as exc:
        return _not_ready(exc.code, exc.message)
    except TimeoutError:
        return _not_ready(
            "unavailable", f"The database or blob store did not answer in {limit:g} s."
        )
    return JSONResponse({"status": "ok", "database": "ok", "blobStore": "ok"})


def _not_ready(code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=503, headers={"Retry-After": "5"})
