"""Domain errors.

Services raise these; one table in the HTTP kit (``http.errors``) maps them to a status code, and
each wire format supplies only its body (``api/errors.py`` for the native API, each dialect for
its vendor). Every error carries a stable machine-readable ``code``.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: ``code`` is machine-readable, the message is for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class NotFound(DomainError):
    """The resource does not exist, or belongs to another account (indistinguishable)."""

    code = "not_found"


class Unauthenticated(DomainError):
    """Missing, malformed, unknown or revoked API key."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """A signed link was tampered with or has expired."""

    code = "forbidden"


class InvalidInput(DomainError):
    """A value is syntactically fine but not acceptable (out of range, wrong shape)."""

    code = "invalid_request"


class BadRequest(DomainError):
    """The request itself is malformed (bad JSON, bad base64, missing part)."""

    code = "bad_request"


class UnsupportedFormat(DomainError):
    """The bytes are not an image in a format this endpoint accepts."""

    code = "unsupported_format"


class ImageRejected(DomainError):
    """The bytes claim an accepted format but are unusable (corrupt, truncated, too large)."""

    code = "invalid_image"


class PayloadTooLarge(DomainError):
    """More bytes than the limit for this request."""

    code = "payload_too_large"


class LimitReached(DomainError):
    """A count limit (for example images of one type per model) is already used up."""

    code = "limit_reached"


class RequestTimeout(DomainError):
    """The client stopped sending its request (no body bytes for too long)."""

    code = "request_timeout"


class Conflict(DomainError):
    """The request conflicts with the current state of the resource."""

    code = "conflict"


class Gone(DomainError):
    """The resource existed and was removed for good (``erased``: a GDPR erasure)."""

    code = "gone"


class IllegalStatusMove(Conflict):
    """A run was asked for a status change its state machine does not allow: ``already_finished``
    when it has ended (finishing or canceling it again), ``illegal_status_move`` otherwise."""

    code = "illegal_status_move"


class RateLimited(DomainError):
    """Too many requests (for example repeated failed authentications)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FetchFailed(DomainError):
    """A user-supplied URL could not be fetched. One uniform error whatever the cause."""

    code = "fetch_failed"


class Unavailable(DomainError):
    """A backing service (database, blob store) is down; the client may retry."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MlUnavailable(DomainError):
    """This installation cannot train or generate: its workers lack the ML extra. Waiting does
    not help, so unlike ``Unavailable`` it carries no Retry-After."""

    code = "ml_unavailable"


class InsufficientStorage(DomainError):
    """The blob store has no space left."""

    code = "insufficient_storage"
