"""The app factory: ``create_app(settings)`` builds everything; nothing happens at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from loraforge import __version__
from loraforge.api import errors
from loraforge.api.body_limit import BodyLimitMiddleware
from loraforge.api.routers import health, images, model_data, models
from loraforge.bootstrap import Container, build
from loraforge.settings import Settings

log = logging.getLogger("loraforge.api")

_DATA_PATH = re.compile(r"^/v1/models/[^/]+/data(/[^/]+)?/?$")


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> FastAPI:
    """Build the ASGI app. Pass ``container`` to inject fakes (tests); it is then not closed."""
    settings = settings or (container.settings if container else Settings())
    owned = container is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.container = container or build(settings)
        sweeper = asyncio.create_task(_sweep_periodically(app.state.container))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            if owned:
                app.state.container.close()

    app = FastAPI(
        title="loraforge",
        version=__version__,
        summary="Custom image models: training images, LoRA trainings and predictions.",
        lifespan=lifespan,
    )
    if container is not None:
        app.state.container = container
    errors.install(app)
    for router in (health.router, models.router, model_data.router, images.router):
        app.include_router(router)

    def limit_for(scope: Scope) -> int:
        if _DATA_PATH.match(scope["path"]):
            return settings.max_data_bytes
        return settings.max_request_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    return app


async def _sweep_periodically(container: Container) -> None:
    interval = container.settings.blob_sweep_interval_s
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        try:
            report = await run_in_threadpool(container.sweeper.sweep)
            log.info("blob sweep: %s", report)
        except Exception:
            log.exception("blob sweep failed")
