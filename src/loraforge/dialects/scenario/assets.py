"""Scenario assets: ``POST /assets`` (base64 ``image`` + ``name``) and ``GET /assets/{id}``.

An uploaded asset is a core reference Image with origin ``scenario`` and no model: the native
API serves the same image at ``/v1/images/{id}`` (the id without ``asset_``). Any image of the
account can be read as an asset, training images included.
"""

from __future__ import annotations

import io

from fastapi import APIRouter

from loraforge.dialects.scenario import schemas as s
from loraforge.dialects.scenario import translate as t
from loraforge.dialects.scenario.deps import ScenarioPrincipal
from loraforge.domain.entities import ALL_FORMATS, ImageKind
from loraforge.domain.errors import BadRequest
from loraforge.http.deps import ContainerDep, LinksDep
from loraforge.services.images import Upload
from loraforge.services.inline_images import decode_inline

router = APIRouter(prefix="/assets")


@router.post("")
def upload_asset(
    body: s.AssetUpload, who: ScenarioPrincipal, c: ContainerDep, links: LinksDep
) -> s.AssetEnvelope:
    if not body.image:
        raise BadRequest("image (the base64 of the image) is required.", field="image")
    data = decode_inline(body.image, max_bytes=c.limits.max_request_bytes)
    upload = Upload(stream=io.BytesIO(data), name=body.name)
    with upload.stream:
        image = c.images.ingest(
            who,
            upload,
            kind=ImageKind.REFERENCE,
            model_id=None,
            allowed=ALL_FORMATS,
            origin="scenario",
        )
    return t.asset_envelope(image, links)


@router.get("/{assetId}")
def get_asset(
    assetId: str, who: ScenarioPrincipal, c: ContainerDep, links: LinksDep
) -> s.AssetEnvelope:
    image = c.images.get(who, t.core_id(t.ASSET, assetId))
    return t.asset_envelope(image, links)
