"""/v1/models/{modelId}/captions: caption a model's training images as a job, and poll it."""

from __future__ import annotations

from fastapi import APIRouter

from loraforge.api.errors import documented
from loraforge.api.presenters import caption_run_read
from loraforge.api.schemas.work import CaptionRunCreate, CaptionRunRead
from loraforge.http.deps import ContainerDep, PrincipalDep

router = APIRouter(prefix="/v1/models/{modelId}/captions", tags=["captions"])
NO_OPTIONS = CaptionRunCreate()  # a request without a body


@router.post(
    "",
    responses=documented(400, 404, 409, 413, 422),
    status_code=202,
    response_model=CaptionRunRead,
)
def caption_images(
    modelId: str, who: PrincipalDep, c: ContainerDep, body: CaptionRunCreate = NO_OPTIONS
) -> CaptionRunRead:
    """Queue a caption run over the model's training images (without a body: those without a
    caption). 409 `captioning_unavailable` when no captioning model is configured."""
    run = c.captions.request(who, modelId, overwrite=body.overwrite)
    return caption_run_read(run)


@router.get("/{runId}", responses=documented(404), response_model=CaptionRunRead)
def get_caption_run(modelId: str, runId: str, who: PrincipalDep, c: ContainerDep) -> CaptionRunRead:
    """Status and progress (`step` of `totalSteps` images) of a caption run."""
    return caption_run_read(c.captions.get(who, modelId, runId))
