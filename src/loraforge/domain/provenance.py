"""Provenance (issue 13 §5): the signing key, a training's signed receipt, and what a receipt
binds. Pure: no I/O, no crypto library (signing is a port).

A receipt is a JSON document ``{"receipt": {...}, "sha256": ..., "signature": {...}}``. The
signature is Ed25519 over the RFC 8785 canonical JSON (JCS) of ``receipt``; ``sha256`` is that
same byte string's SHA-256, the value every weights file of the training carries in its
``loraforge.receipt_sha256`` metadata. The weights hashes the receipt lists are those of each
file *without* that one metadata key (the receipt cannot name a hash of itself): see
``docs/api.md`` for the ten lines that verify both offline.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785

from loraforge.domain.weights import manifest_sha256
from loraforge.domain.work import Training

RECEIPT_TYPE = "loraforge.training-receipt"
RECEIPT_VERSION = 1
ALGORITHM = "EdDSA"  # JOSE's name for Ed25519 signatures (RFC 8037)
RECEIPT_METADATA_KEY = "loraforge.receipt_sha256"


@dataclass(frozen=True)
class SigningKey:
    """The server's Ed25519 key: ``private`` is the raw 32-byte seed, ``public`` the raw 32-byte
    public key; ``id`` is the RFC 7638 JWK thumbprint of the public key."""

    id: str
    private: bytes
    public: bytes
    created_at: datetime


@dataclass(frozen=True)
class WeightsHash:
    """One weights file the training produced, as the weights service serves it, without its
    ``loraforge.receipt_sha256`` metadata key."""

    format: str
    dtype: str
    sha256: str


@dataclass(frozen=True)
class Receipt:
    """A frozen, signed receipt: ``payload`` is what was signed (as JSON), ``canonical`` its
    exact signed bytes (RFC 8785), ``signature`` the raw 64-byte Ed25519 signature."""

    training_id: str
    key_id: str
    payload: dict[str, Any]
    signature: bytes
    created_at: datetime

    @property
    def canonical(self) -> bytes:
        return canonical(self.payload)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()

    def document(self) -> dict[str, Any]:
        """What ``GET …/receipt`` answers and the export's ``receipt.json`` holds."""
        return {
            "receipt": self.payload,
            "sha256": self.sha256,
            "signature": {"alg": ALGORITHM, "keyId": self.key_id, "value": b64url(self.signature)},
        }


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON: sorted keys, no spaces, ECMAScript number forms, UTF-8."""
    return rfc8785.dumps(value)


def b64url(data: bytes) -> str:
    """Base64url without padding (JOSE's encoding)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_id(public: bytes) -> str:
    """RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over its required JWK members."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(public)}
    return b64url(hashlib.sha256(canonical(members)).digest())


def public_jwk(key: SigningKey) -> dict[str, str]:
    """The public key as a JWK (RFC 8037, OKP / Ed25519)."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(key.public),
        "kid": key.id,
        "alg": ALGORITHM,
        "use": "sig",
    }


def _time(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at is not None else None


def receipt_payload(
    training: Training,
    *,
    base_model_sha256: str,
    stored_sha256: str,
    weights: Sequence[WeightsHash],
    key: str,
    issued_at: datetime,
) -> dict[str, Any]:
    """What a succeeded ``training``'s receipt binds: the training and its model, the base
    model and its hash, every image's sha256 and the caption it trained with (the manifest's),
    the hyperparameters and seed, the stored weights file's sha256 and that of every file the
    weights service serves (without its receipt hash), the times and the key id."""
    manifest: Mapping[str, Any] = training.manifest
    hyper = dict(manifest["hyperparameters"])
    return {
        "type": RECEIPT_TYPE,
        "version": RECEIPT_VERSION,
        "trainingId": training.id,
        "modelId": training.model_id,
        "baseModel": {"id": manifest["baseModel"], "sha256": base_model_sha256},
        "manifestSha256": manifest_sha256(manifest),
        "triggerWord": training.trigger_word,
        "images": [{"sha256": i["sha256"], "caption": i["caption"]} for i in manifest["images"]],
        "hyperparameters": hyper,
        "seed": hyper["seed"],
        "weights": {
            "storedSha256": stored_sha256,
            "files": [{"format": w.format, "dtype": w.dtype, "sha256": w.sha256} for w in weights],
        },
        "createdAt": _time(training.created_at),
        "startedAt": _time(training.started_at),
        "finishedAt": _time(training.finished_at),
        "issuedAt": _time(issued_at),
        "keyId": key,
    }


def uses_image(training: Training, *, image_ids: set[str], sha256: str) -> bool:
    """Whether ``training``'s frozen manifest trained on the image (its id, or its bytes)."""
    return any(
        item["id"] in image_ids or item["sha256"] == sha256 for item in training.manifest["images"]
    )
