"""The one place that maps errors to HTTP: one set of exception handlers, installed once per
wire format, where each wire format supplies only its error *body*.

The status of a domain error comes from one table (``STATUS``, looked up along the exception's
class hierarchy); routing errors keep their status and get a machine code from ``HTTP_CODES``.
Every 422 a client can cause (pydantic's or a service's) has the code ``invalid_request``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from loraforge.domain import errors as e

log = logging.getLogger("loraforge.http")

ErrorBody = Callable[[int, str, str, str | None], dict[str, Any]]
"""``(status, code, message, field) -> body``: a wire format's error body. ``code`` is the core's
machine code (``DomainError.code``, or ``HTTP_CODES`` for routing errors)."""

STATUS: dict[type[e.DomainError], int] = {
    e.BadRequest: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.RequestTimeout: 408,
    e.Conflict: 409,
    e.Gone: 410,
    e.LimitReached: 409,
    e.PayloadTooLarge: 413,
    e.UnsupportedFormat: 415,
    e.InvalidInput: 422,
    e.ImageRejected: 422,
    e.FetchFailed: 422,
    e.RateLimited: 429,
    e.MlUnavailable: 501,
    e.Unavailable: 503,
    e.InsufficientStorage: 507,
}

VALIDATION_CODE = e.InvalidInput.code
"""A request that does not match its schema is an invalid input like any other."""

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_format",
    422: VALIDATION_CODE,
    429: "rate_limited",
    503: "unavailable",
}


def status_for(exc: e.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def headers_for(exc: e.DomainError) -> dict[str, str]:
    if isinstance(exc, e.RateLimited | e.Unavailable):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, e.Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, e.RequestTimeout):
        return {"Connection": "close"}  # the rest of the body may still come: never reuse
    return {}


def http_headers(request: Request, exc: StarletteHTTPException) -> Mapping[str, str] | None:
    """The headers of a routing error; a 405's ``Allow`` lists every method of the path.

    The router answers 405 from the first route whose path matches, so with ``GET`` and
    ``POST`` on one path in two routes its ``Allow`` named only one of them."""
    if exc.status_code != 405:
        return exc.headers
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.router.routes):
        route, allowed = context.original_route, context.methods
        if isinstance(route, Route) and allowed and context.matches(request.scope)[0] != Match.NONE:
            methods |= allowed
    if not methods:
        return exc.headers
    return {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}


def describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    """A readable message and the offending field from pydantic's error list."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    field = ".".join(loc) or None
    message = str(first.get("msg", "Invalid request."))
    return (f"{field}: {message}" if field else message), field


def install_error_handlers(app: FastAPI, body: ErrorBody) -> None:
    """Answer every error of ``app`` in one wire format's shape: domain errors, request
    validation, routing errors (404, 405), ``PayloadTooLarge`` from ``BodyLimitMiddleware``
    (which wraps mounted apps too) and anything unexpected (500)."""

    async def domain(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.DomainError)
        status = status_for(exc)
        return JSONResponse(
            body(status, exc.code, exc.message, exc.field),
            status_code=status,
            headers=headers_for(exc),
        )

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            # A body that is not JSON at all is malformed (400); pydantic's "loc" would
            # otherwise report the character offset as the field.
            return JSONResponse(body(400, "bad_request", "The body is not valid JSON.", None), 400)
        message, field = describe_validation(exc)
        return JSONResponse(body(422, VALIDATION_CODE, message, field), 422)

    async def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, e.DomainError):
            # FastAPI turns any error raised while it reads a body parameter into a generic
            # 400; the domain error underneath (PayloadTooLarge from BodyLimitMiddleware) is
            # the answer.
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

    app.add_exception_handler(e.DomainError, domain)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(Exception, unexpected)
