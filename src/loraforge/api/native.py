"""The native API (``/v1``, seed 003 shapes) as one wire format: its routers and its error body."""

from __future__ import annotations

from fastapi import FastAPI

from loraforge.api.errors import AUTHENTICATED, RESPONSES, wire_error_body
from loraforge.api.routers import (
    health,
    images,
    model_data,
    models,
    platform,
    predictions,
    trainings,
)
from loraforge.http.errors import install_error_handlers

_ROUTERS = (
    health.router,
    models.router,
    model_data.router,
    images.router,
    trainings.router,
    predictions.router,
    platform.router,
)


def install(app: FastAPI) -> None:
    """Serve the native API from ``app`` itself (not mounted: it answers at the root)."""
    install_error_handlers(app, wire_error_body)
    for router in _ROUTERS:
        public = router is health.router  # health checks take no key
        app.include_router(router, responses=RESPONSES if public else AUTHENTICATED)
