"""JSON text from a client, parsed into a value or refused with a 400 in the caller's words.

``json.loads`` raises ``RecursionError`` for deeply nested input (``[`` x 100,000), which is no
``ValueError``: callers that caught only decode errors answered 500 and dropped WebSockets. It
also accepts escaped lone surrogates (``"\\ud800"``), strings that cannot be encoded again: echoed
in an answer (a Runware ``taskUUID``) they made the response fail with a 500. Every hand-parsed
body, multipart ``data`` part and WebSocket frame goes through ``parse_json``. (FastAPI's own
body parsing turns any parse failure into a 400, and pydantic refuses such strings.)
"""

from __future__ import annotations

import json
import re

from loraforge.domain.errors import BadRequest

# An escaped UTF-16 surrogate: the only way a lone one gets in. Cheap to look for; only when
# one is present is the whole value checked (a pair, as in an escaped emoji, is fine).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(raw: str | bytes, *, message: str) -> object:
    """The value of ``raw``; ``BadRequest(message)`` when it is not JSON, is not UTF-8, is
    nested deeper than the parser's recursion limit or holds a string that is not text."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        value: object = json.loads(text)
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(value, ensure_ascii=False).encode()  # UnicodeEncodeError if lone
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeError included
        raise BadRequest(message) from exc
    return value
