"""Verifying loraforge receipts and weights the way an outsider would: the public key from
``GET /v1/signing-key``, ``cryptography`` and ``rfc8785``, and no loraforge code at all (the
snippet docs/api.md shows)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

RECEIPT_KEY = "loraforge.receipt_sha256"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_receipt(document: dict[str, Any], jwk: dict[str, str]) -> bytes:
    """Check the signature (raises ``InvalidSignature``) and the hash; the signed bytes."""
    signed = rfc8785.dumps(document["receipt"])
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    public.verify(b64url_decode(document["signature"]["value"]), signed)
    assert document["signature"]["keyId"] == jwk["kid"] == document["receipt"]["keyId"]
    assert hashlib.sha256(signed).hexdigest() == document["sha256"]
    return signed


def unstamped(data: bytes) -> tuple[bytes, str]:
    """A served safetensors file without its ``loraforge.receipt_sha256`` metadata key (its
    header written again compactly, padded with spaces to 8 bytes), and that key's value."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    receipt_sha256 = header["__metadata__"].pop(RECEIPT_KEY)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + length :], receipt_sha256
