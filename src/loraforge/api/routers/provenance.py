"""Provenance: a training's signed receipt and its export; an image's lineage and erasure."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from loraforge.api.errors import documented
from loraforge.api.presenters import erasure_read, lineage_read
from loraforge.api.schemas.provenance import ErasureRead, LineageRead
from loraforge.http.deps import ContainerDep, PrincipalDep

router = APIRouter(tags=["provenance"])
TRAINING = "/v1/models/{modelId}/trainings/{trainingId}"


@router.get(f"{TRAINING}/receipt", responses=documented(404, 409))
def training_receipt(
    modelId: str, trainingId: str, who: PrincipalDep, c: ContainerDep
) -> dict[str, Any]:
    """The training's receipt, frozen when it succeeded: `{receipt, sha256, signature}`. The
    signature is Ed25519 over the RFC 8785 canonical JSON of `receipt` (`GET /v1/signing-key`);
    `sha256` is that JSON's hash, the `loraforge.receipt_sha256` of every weights file. 409
    `no_receipt` before it succeeded. Erased trainings keep their receipt."""
    return c.receipts.get(who, modelId, trainingId).document()


@router.get(
    f"{TRAINING}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, **documented(404, 409, 410)},
)
def training_export(
    modelId: str, trainingId: str, who: PrincipalDep, c: ContainerDep
) -> StreamingResponse:
    """A ZIP: kohya and diffusers weights in fp16, `manifest.json`, `receipt.json`, the sample
    sheet when there is one, and a `README.txt` on loading the LoRA. 410 `erased`."""
    export = c.exports.export(who, modelId, trainingId)
    return StreamingResponse(
        export.chunks(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )


@router.get("/v1/images/{imageId}/lineage", responses=documented(404), response_model=LineageRead)
def image_lineage(imageId: str, who: PrincipalDep, c: ContainerDep) -> LineageRead:
    """The trainings whose manifest used the image (its id or identical bytes; soft-deleted
    ones too) and the predictions that mixed those trainings."""
    return lineage_read(c.provenance.lineage(who, imageId))


@router.post("/v1/images/{imageId}/erase", responses=documented(404), response_model=ErasureRead)
def erase_image(imageId: str, who: PrincipalDep, c: ContainerDep) -> ErasureRead:
    """Consent withdrawn: delete the image (and the account's identical copies) with its
    variants, and the weights and other artifacts of every training that used it. Those
    trainings keep status, history and receipt and gain `erasedAt`."""
    return erasure_read(c.provenance.erase(who, imageId))
