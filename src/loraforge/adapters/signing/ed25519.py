"""Ed25519 with ``cryptography``: the ``Signer`` port."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_RAW = serialization.Encoding.Raw


class Ed25519Signer:
    def generate(self) -> tuple[bytes, bytes]:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return private, key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)

    def sign(self, private: bytes, data: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(private).sign(data)

    def public_pem(self, public: bytes) -> str:
        key = Ed25519PublicKey.from_public_bytes(public)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
