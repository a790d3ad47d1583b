"""Signed links to image content, built for one request: what presenters take to write URLs.

A presenter never reaches into the service container; it takes an ``ImageLinks`` (from the
``LinksDep`` dependency) and asks it for the link of an image variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from loraforge.bootstrap import Container
from loraforge.domain.entities import ImageVariant
from loraforge.http.deps import get_container
from loraforge.services.links import LinkSigner


@dataclass(frozen=True)
class ImageLinks:
    """Signed content links under ``base`` (the configured public URL or the request's)."""

    base: str
    signer: LinkSigner

    def content(self, image_id: str, variant: ImageVariant = ImageVariant.ORIGINAL) -> str:
        signature = self.signer.sign(image_id, variant)
        return (
            f"{self.base}/v1/images/{image_id}/content"
            f"?variant={variant.value}&expires={signature.expires}&sig={signature.sig}"
        )


def public_base(request: Request, container: Container) -> str:
    configured = container.settings.public_url
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def image_links(request: Request) -> ImageLinks:
    container = get_container(request)
    return ImageLinks(base=public_base(request, container), signer=container.links)


LinksDep = Annotated[ImageLinks, Depends(image_links)]
