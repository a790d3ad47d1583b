"""GET /v1/signing-key: the public key receipts are signed with. No key needed: whoever holds a
receipt (a customer, an auditor) must be able to verify it without an account here."""

from __future__ import annotations

from fastapi import APIRouter

from loraforge.api.presenters import signing_key_read
from loraforge.api.schemas.provenance import SigningKeyRead
from loraforge.http.deps import ContainerDep

router = APIRouter(tags=["provenance"])


@router.get("/v1/signing-key", response_model=SigningKeyRead)
def signing_key(c: ContainerDep) -> SigningKeyRead:
    """The server's Ed25519 public key, as a JWK and as PEM, with its key id."""
    return signing_key_read(c.signing_keys.current(), c.signing_keys.public_pem())
