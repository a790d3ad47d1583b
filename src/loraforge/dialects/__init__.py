"""Vendor wire formats over the core: each dialect translates, the services decide.

A dialect is ``dialects/<vendor>/{router.py, schemas.py, translate.py}`` and is served as its own
FastAPI sub-app (``create_app(parent)``) that ``api/app.py`` mounts with ``app.mount``. Helpers
shared by every dialect live here:

- ``sub_app`` builds the sub-app. It shares the parent's ``state``, so the API's dependencies
  (``api.deps``: the container, the principal) work unchanged inside it; a mounted app's own
  lifespan never runs.
- ``install_error_handlers`` answers every error of the sub-app in the vendor's shape, with the
  status of ``api.errors.status_for``: domain errors, request validation, routing errors (404,
  405), ``PayloadTooLarge`` from the parent's ``BodyLimitMiddleware`` (which wraps mounted apps
  too) and anything unexpected (500).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraforge.api.errors import (
    HTTP_CODES,
    describe_validation,
    headers_for,
    http_headers,
    status_for,
)
from loraforge.api.openapi import publish_limits
from loraforge.domain.errors import DomainError

log = logging.getLogger("loraforge.dialects")

ErrorBody = Callable[[int, str, str, str | None], dict[str, Any]]
"""``(status, code, message, field) -> body``: a vendor's error body; ``code`` is the core's
machine code (``DomainError.code``, or ``api.errors.HTTP_CODES`` for routing errors)."""


def sub_app(parent: FastAPI, *, title: str) -> FastAPI:
    """A FastAPI app for one dialect, sharing ``parent.state``; no docs routes of its own."""
    app = FastAPI(title=title, openapi_url=None, docs_url=None, redoc_url=None)
    app.state = parent.state
    publish_limits(app)  # ``app.openapi()``: not served, but built for tests and fuzzers
    return app


def install_error_handlers(app: FastAPI, body: ErrorBody) -> None:
    async def domain(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        status = status_for(exc)
        return JSONResponse(
            body(status, exc.code, exc.message, exc.field),
            status_code=status,
            headers=headers_for(exc),
        )

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            return JSONResponse(body(400, "bad_request", "The body is not valid JSON.", None), 400)
        message, field = describe_validation(exc)
        return JSONResponse(body(422, "invalid_request", message, field), 422)

    async def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, DomainError):
            # FastAPI turns an error raised while it reads a body parameter into a generic 400;
            # the domain error underneath (PayloadTooLarge from BodyLimitMiddleware) is the answer.
            return await domain(request, exc.__cause__)
        code = HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            body(exc.status_code, code, str(exc.detail), None),
            status_code=exc.status_code,
            headers=http_headers(request, exc),
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(body(500, "internal_error", "Internal server error.", None), 500)

    app.add_exception_handler(DomainError, domain)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(Exception, unexpected)
