"""Signed links to image content, built for one request: what presenters take to write URLs.

A presenter never reaches into the service container; it takes an ``ImageLinks`` (from the
``LinksDep`` dependency, ``http.deps``) and asks it for the link of an image variant. This module
stays free of the framework and the container, so the presenters that import it do too.
"""

from __future__ import annotations

from dataclasses import dataclass

from loraforge.domain.entities import ImageVariant
from loraforge.services.links import LinkSigner


@dataclass(frozen=True)
class ImageLinks:
    """Signed content links under ``base`` (the configured public URL or the request's)."""

    base: str
    signer: LinkSigner

    def content(self, image_id: str, variant: ImageVariant = ImageVariant.ORIGINAL) -> str:
        return self.signer.url(self.base, image_id, variant)
