"""The native API's error body, ``{"error": {"code", "message", "field"?}}``, and its docs.

The handlers and the status table are the HTTP kit's (``http.errors``); this module supplies
only the body they answer with on the native API, and the ``responses=`` that document it.
"""

from __future__ import annotations

from typing import Any

from loraforge.api.schemas.common import ErrorBody

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
    410: "Gone for good: the training was erased (an image it used was erased).",
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


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def wire_error_body(status: int, code: str, message: str, field: str | None) -> dict[str, Any]:
    """The native API's ``http.errors.ErrorBody``: the status is in the response line."""
    return error_body(code, message, field)
