"""The app factory: ``create_app(settings)`` builds everything; nothing happens at import.

The app serves the native API at its root and mounts every declared dialect (``DIALECTS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from loraforge import __version__
from loraforge.api import native
from loraforge.bootstrap import Container, build
from loraforge.dialects import photogpt, runware, scenario
from loraforge.http.body_limit import BodyLimitMiddleware
from loraforge.http.client_address import TrustedProxies
from loraforge.http.dialect import Dialect
from loraforge.http.event_hub import EventHub
from loraforge.http.framing import FramingGuard
from loraforge.http.openapi import publish_limits
from loraforge.settings import Settings

log = logging.getLogger("loraforge.app")

# Vendor wire formats, each a sub-app with its own error shape, mounted under its prefix.
DIALECTS: tuple[Dialect, ...] = (photogpt.DIALECT, runware.DIALECT, scenario.DIALECT)


class BackgroundService(Protocol):
    """Something that runs beside the server for its lifetime (e.g. supervised workers)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(
    settings: Settings | None = None,
    *,
    container: Container | None = None,
    background: Sequence[BackgroundService] = (),
) -> FastAPI:
    """Build the ASGI app. Pass ``container`` to inject fakes (tests); it is then not closed.
    ``background`` services start with the app and stop when it shuts down."""
    settings = settings or (container.settings if container else Settings())
    owned = container is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.container = container or build(settings)
        sweeper = asyncio.create_task(_sweep_periodically(app.state.container))
        for service in background:
            service.start()
        try:
            yield
        finally:
            for service in background:
                await run_in_threadpool(service.stop)
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
    app.state.trusted_proxies = TrustedProxies(settings.trusted_proxies)
    app.state.event_hub = EventHub(
        poll_s=settings.event_poll_s, max_streams_per_account=settings.max_event_streams
    )
    publish_limits(app)
    native.install(app)
    for dialect in DIALECTS:
        app.mount(dialect.prefix, dialect.create_app(app))

    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=native.body_limit(settings),
        body_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(FramingGuard)  # outermost: ambiguous framing never reaches a route
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
        try:
            retention = await run_in_threadpool(container.retention.sweep)
            log.info("retention sweep: %s", retention)
        except Exception:
            log.exception("retention sweep failed")
