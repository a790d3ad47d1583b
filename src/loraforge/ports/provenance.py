"""Provenance ports: the stored signing key, frozen receipts, Ed25519, base model hashes."""

from __future__ import annotations

from typing import Protocol

from loraforge.domain.ml import BaseModel
from loraforge.domain.provenance import Receipt, SigningKey


class SigningKeyRepository(Protocol):
    """The server's one signing key, shared by every API and worker process."""

    def get(self) -> SigningKey | None:
        """The stored key, or None before the first one is made."""
        ...

    def add_if_absent(self, key: SigningKey) -> None:
        """Store ``key`` unless a key is stored already (also one another transaction is
        committing now: on PostgreSQL this waits for it). Never raises for that case: read
        ``get`` afterwards for the key that won."""
        ...


class TrainingReceiptRepository(Protocol):
    """Training receipts, frozen once the training succeeds; never changed or deleted."""

    def add(self, receipt: Receipt) -> None: ...

    def get(self, training_id: str) -> Receipt | None: ...


class Signer(Protocol):
    """Ed25519 keys and signatures."""

    def generate(self) -> tuple[bytes, bytes]:
        """A new key pair: (32-byte private seed, 32-byte public key)."""
        ...

    def sign(self, private: bytes, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        ...

    def public_pem(self, public: bytes) -> str:
        """The public key as PEM (SubjectPublicKeyInfo)."""
        ...


class BaseModelHasher(Protocol):
    """What identifies a base model's weights."""

    def sha256(self, base: BaseModel) -> str:
        """The sha256 of a single-file checkpoint; of a diffusers folder, the sha256 over each
        file's relative path and sha256 (sorted by path); the built-in tiny model is such a
        folder, shipped in the package."""
        ...
