"""The one place that maps domain errors to HTTP for the native API.

Every error answers ``{"error": {"code": "<machine_code>", "message": "...", "field"?: ...}}``.
Dialects install their own handlers with the same status table (``status_for``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from loraforge.api.schemas.common import ErrorBody
from loraforge.domain import errors as e

log = logging.getLogger("loraforge.api")

STATUS: dict[type[e.DomainError], int] = {
    e.BadRequest: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.RequestTimeout: 408,
    e.Conflict: 409,
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

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_format",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


# Documents the one error shape on every native route. A "4XX" entry also stops FastAPI from
# documenting its own {"detail": [...]} 422 body, which this API never sends.
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": ErrorBody,
        "description": 'Client error: `{"error": {code, message, field?}}`.',
    },
    "5XX": {"model": ErrorBody, "description": "Server error, same shape."},
}


_MEANINGS = {
    400: "Malformed request: a body that is not JSON (or nested too deeply), bad base64...",
    401: "No key, or a key that is not valid.",
    403: "A signed link whose signature is wrong or that has expired.",
    404: "No such resource in the caller's account.",
    409: "Conflicts with the current state, or a per-model limit is reached.",
    413: "The request body is larger than the limit.",
    415: "The image's format (decided from its bytes) is not accepted here.",
    422: "A value is missing, of the wrong type or out of range, or the image is unusable.",
    429: "Too many failed authentications from this client: retry after `Retry-After`.",
    503: "A dependency (database, blob store) is unavailable: retry after `Retry-After`.",
    507: "The server is out of storage.",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the statuses a native route can answer (the one shape)."""
    return {code: {"model": ErrorBody, "description": _MEANINGS[code]} for code in codes}


# Every route that takes a key can answer these (health checks do not take one).
AUTHENTICATED: dict[int | str, dict[str, Any]] = {**RESPONSES, **documented(401, 429, 503)}


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


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    """A readable message and the offending field from pydantic's error list."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    field = ".".join(loc) or None
    message = str(first.get("msg", "Invalid request."))
    return (f"{field}: {message}" if field else message), field


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.DomainError)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.field),
        status_code=status_for(exc),
        headers=headers_for(exc),
    )


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        # A body that is not JSON at all is malformed (400), as on every other native route;
        # pydantic's "loc" would otherwise report the character offset as the field.
        return JSONResponse(error_body("bad_request", "The body is not valid JSON."), 400)
    message, field = describe_validation(exc)
    return JSONResponse(error_body("validation_error", message, field), status_code=422)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, e.DomainError):
        # FastAPI turns any error raised while it reads a body parameter into a generic 400;
        # the domain error underneath (PayloadTooLarge from BodyLimitMiddleware) is the answer.
        return await _domain(request, exc.__cause__)
    code = HTTP_CODES.get(exc.status_code, "error")
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers=http_headers(request, exc),
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("internal_error", "Internal server error."), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
