"""The native API (``/v1``, seed 003 shapes) as one wire format: its routers and its error body."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import Scope

from loraforge.api.errors import AUTHENTICATED, RESPONSES, wire_error_body
from loraforge.api.routers import (
    captions,
    dataset_report,
    health,
    images,
    model_data,
    model_data_archive,
    models,
    platform,
    predictions,
    provenance,
    signing_key,
    training_samples,
    trainings,
)
from loraforge.http.errors import install_error_handlers
from loraforge.settings import Settings

_ARCHIVE_PATH = re.compile(r"^/v1/models/[^/]+/data/archive/?$")
_DATA_PATH = re.compile(r"^/v1/models/[^/]+/data(/[^/]+)?/?$")

_ROUTERS = (
    health.router,
    models.router,
    model_data_archive.router,  # before model_data: "archive" is no dataId
    model_data.router,
    dataset_report.router,
    images.router,
    trainings.router,
    training_samples.router,
    captions.router,
    predictions.router,
    platform.router,
    provenance.router,
    signing_key.router,
)
# Routes that take no key: health checks, and the public key anyone verifies receipts with.
_PUBLIC = (health.router, signing_key.router)


def install(app: FastAPI) -> None:
    """Serve the native API from ``app`` itself (not mounted: it answers at the root)."""
    install_error_handlers(app, wire_error_body)
    for router in _ROUTERS:
        public = router in _PUBLIC
        app.include_router(router, responses=RESPONSES if public else AUTHENTICATED)


def body_limit(settings: Settings) -> Callable[[Scope], int]:
    """The body limit of a request (``BodyLimitMiddleware``): training data (``/v1/models/{id}/
    data``) and training-set archives (``…/data/archive``) have their own, every other request
    of any wire format the general one."""

    def limit_for(scope: Scope) -> int:
        if _ARCHIVE_PATH.match(scope["path"]):
            return settings.max_archive_bytes
        if _DATA_PATH.match(scope["path"]):
            return settings.max_data_bytes
        return settings.max_request_bytes

    return limit_for
