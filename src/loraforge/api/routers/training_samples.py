"""/v1/models/{modelId}/trainings/{trainingId}/samples|checkpoints|sample-sheet (issue 13 §2)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from loraforge.api.errors import documented
from loraforge.api.presenters import checkpoint_read, sample_read
from loraforge.api.schemas.samples import CheckpointRead, SampleRead
from loraforge.domain.entities import ImageVariant
from loraforge.http.deps import ContainerDep, LinksDep, PrincipalDep
from loraforge.http.streaming import file_chunks

router = APIRouter(prefix="/v1/models/{modelId}/trainings/{trainingId}", tags=["trainings"])


@router.get("/samples", responses=documented(404), response_model=list[SampleRead])
def list_samples(
    modelId: str, trainingId: str, who: PrincipalDep, c: ContainerDep, links: LinksDep
) -> list[SampleRead]:
    """The images the training rendered at its sample steps, by step then prompt; they are
    images of the type `sample`, never in `output` listings."""
    return [sample_read(v, links) for v in c.training_outputs.samples(who, modelId, trainingId)]


@router.get("/checkpoints", responses=documented(404), response_model=list[CheckpointRead])
def list_checkpoints(
    modelId: str, trainingId: str, who: PrincipalDep, c: ContainerDep
) -> list[CheckpointRead]:
    """The LoRAs kept at sample steps (`…/weights?step=N`, a prediction's `checkpointStep`)."""
    views = c.training_outputs.checkpoints(who, modelId, trainingId)
    return [checkpoint_read(v) for v in views]


@router.get(
    "/sample-sheet",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/png": {}}}, **documented(404)},
)
def sample_sheet(
    modelId: str, trainingId: str, who: PrincipalDep, c: ContainerDep
) -> StreamingResponse:
    """One PNG grid of every sample (rows: steps, columns: prompts), each labelled with its
    step and prompt; 404 `sample_sheet_not_ready` until the training succeeded."""
    image = c.training_outputs.sheet(who, modelId, trainingId)
    content = c.images.open(image, ImageVariant.ORIGINAL)
    return StreamingResponse(
        file_chunks(content.stream),
        media_type="image/png",
        headers={"X-Image-Id": image.id, "Cache-Control": "no-store"},
    )
