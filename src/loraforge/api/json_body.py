"""JSON text from a client, parsed into a value or refused with a 400 in the caller's words.

``json.loads`` raises ``RecursionError`` for deeply nested input (``[`` x 100,000), which is no
``ValueError``: callers that caught only decode errors answered 500 and dropped WebSockets. Every
hand-parsed body, multipart ``data`` part and WebSocket frame goes through ``parse_json``.
(FastAPI's own body parsing already turns any parse failure into a 400.)
"""

from __future__ import annotations

import json

from loraforge.domain.errors import BadRequest


def parse_json(raw: str | bytes, *, message: str) -> object:
    """The value of ``raw``; ``BadRequest(message)`` when it is not JSON, is not UTF-8 or is
    nested deeper than the parser's recursion limit."""
    try:
        value: object = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError included
        raise BadRequest(message) from exc
    return value
