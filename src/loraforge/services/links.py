"""Signed, expiring links to image content, like presigned object-store URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from loraforge.domain.entities import ImageVariant
from loraforge.domain.errors import Forbidden
from loraforge.ports import Clock
from loraforge.services.private_files import read_or_create

SECRET_FILE = "signing-secret"  # noqa: S105 - a file name, not a secret


def signing_secret(configured: str | None, data_dir: Path) -> bytes:
    """The secret links are signed with: the configured one, else one made once and kept in
    ``data_dir``, so links stay valid across restarts and between the server's processes."""
    if configured:
        return configured.encode()
    return read_or_create(data_dir / SECRET_FILE, lambda: secrets.token_hex(32)).encode()


@dataclass(frozen=True)
class Signature:
    expires: int
    sig: str


class LinkSigner:
    def __init__(self, *, secret: bytes, ttl_s: int, clock: Clock) -> None:
        self._secret = secret
        self._ttl = ttl_s
        self._clock = clock

    def _mac(self, image_id: str, variant: ImageVariant, expires: int) -> str:
        message = f"{image_id}\n{variant.value}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, image_id: str, variant: ImageVariant) -> Signature:
        # Expiry rounded up to a minute: links made in the same minute are identical, so
        # browsers and CDNs can cache them.
        expires = (int(self._clock.now().timestamp()) + self._ttl + 59) // 60 * 60
        return Signature(expires=expires, sig=self._mac(image_id, variant, expires))

    def verify(self, image_id: str, variant: ImageVariant, *, expires: int, sig: str) -> None:
        expected = self._mac(image_id, variant, expires)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise Forbidden("The link signature is not valid.")
        if expires < self._clock.now().timestamp():
            raise Forbidden("The link has expired.")

    def url(self, base: str, image_id: str, variant: ImageVariant) -> str:
        """The signed content link of an image variant under ``base`` (a public URL)."""
        signature = self.sign(image_id, variant)
        return (
            f"{base}/v1/images/{image_id}/content"
            f"?variant={variant.value}&expires={signature.expires}&sig={signature.sig}"
        )
