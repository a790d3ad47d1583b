"""Dependencies of the Scenario routes.

Who is calling: ``Authorization: Basic base64(<key>:<secret>)``, as the SDK sends for
``api_key`` + ``api_secret`` where both are the same loraforge API key; or ``Bearer <key>``.
Failures count towards the same per-client limit (429) as the native API's. Signed links come
from the kit's ``LinksDep``."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated

from fastapi import Depends, Request

from loraforge.domain.entities import Principal
from loraforge.http.deps import authenticate


def presented_key(request: Request) -> str | None:
    """The key from ``Basic base64(key:key)`` or ``Bearer key``; None when absent or malformed
    (a Basic secret that is not the key itself counts as a wrong key)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, colon, secret = decoded.partition(":")
    if not colon or not key or not hmac.compare_digest(key.encode(), secret.encode()):
        return None
    return key


async def get_principal(request: Request) -> Principal:
    return await authenticate(request, presented_key(request))


ScenarioPrincipal = Annotated[Principal, Depends(get_principal)]
