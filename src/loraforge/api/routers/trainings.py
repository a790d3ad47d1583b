"""/v1/models/{modelId}/trainings: seed 003 training jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from loraforge.api.errors import documented
from loraforge.api.presenters import (
    sample_read,
    training_created,
    training_read,
    training_summaries,
)
from loraforge.api.routers.events import Extra, event_stream
from loraforge.api.schemas.work import (
    TrainingCreate,
    TrainingCreated,
    TrainingRead,
    TrainingSummary,
)
from loraforge.domain.captions import DEFAULT_TEMPLATE, TrainingWords
from loraforge.domain.weights import WeightsDtype, WeightsFormat, weights_filename
from loraforge.domain.work import Training, TrainingSpeed
from loraforge.http.deps import ContainerDep, LinksDep, PrincipalDep
from loraforge.http.streaming import file_chunks
from loraforge.services.training_outputs import SampleView
from loraforge.services.training_plan import Overrides

router = APIRouter(prefix="/v1/models/{modelId}/trainings", tags=["trainings"])


@router.post(
    "",
    responses=documented(400, 404, 409, 413, 422),
    status_code=201,
    response_model=TrainingCreated,
)
def start_training(
    modelId: str, body: TrainingCreate, who: PrincipalDep, c: ContainerDep
) -> TrainingCreated:
    training = c.trainings.start(
        who,
        modelId,
        strength=body.trainingStrength,
        speed=TrainingSpeed(body.trainingSpeed),
        webhook_url=body.webhookUrl,
        webhook_events=body.webhookEvents,
        words=training_words(body),
        overrides=Overrides(flip_augment=body.flipAugment),
        require_ready_dataset=body.requireReadyDataset,
        sample_prompts=body.samplePrompts,
    )
    return training_created(training)


def training_words(body: TrainingCreate) -> TrainingWords:
    return TrainingWords(
        trigger=body.triggerWord,
        class_word=body.classWord or "",
        template=body.captionTemplate or DEFAULT_TEMPLATE,
    )


@router.get("", responses=documented(404), response_model=list[TrainingSummary])
def list_trainings(modelId: str, who: PrincipalDep, c: ContainerDep) -> list[TrainingSummary]:
    trainings = c.trainings.list(who, modelId)
    return training_summaries(trainings)


@router.get("/{trainingId}", responses=documented(404), response_model=TrainingRead)
def get_training(modelId: str, trainingId: str, who: PrincipalDep, c: ContainerDep) -> TrainingRead:
    return training_read(c.trainings.get(who, modelId, trainingId))


@router.get(
    "/{trainingId}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **documented(404)},
)
async def training_events(
    modelId: str,
    trainingId: str,
    request: Request,
    who: PrincipalDep,
    c: ContainerDep,
    links: LinksDep,
) -> StreamingResponse:
    """Server-Sent Events: an `update` event with the training on every change, a `sample`
    event for each sample image as it is stored (`{step, prompt, seed, image}`), then `done`
    (or `error` with the error body, e.g. `not_found` when the training is deleted)."""

    def load() -> tuple[Training, list[SampleView]]:
        training = c.trainings.get(who, modelId, trainingId)
        return training, c.training_outputs.samples_of(training)

    def samples(value: tuple[Training, list[SampleView]]) -> list[Extra]:
        return [
            ("sample", v.image.id, sample_read(v, links).model_dump(mode="json")) for v in value[1]
        ]

    await run_in_threadpool(load)  # 404 before the stream starts
    return event_stream(
        request,
        who,
        subject=("training", modelId, trainingId),
        load=load,
        present=lambda value: training_read(value[0]).model_dump(mode="json"),
        terminal=lambda value: value[0].status.terminal,
        extras=samples,
    )


@router.post("/{trainingId}/cancel", responses=documented(404, 409), response_model=TrainingRead)
def cancel_training(
    modelId: str, trainingId: str, who: PrincipalDep, c: ContainerDep
) -> TrainingRead:
    """Queued: canceled at once. Processing: stops within one training step (poll the status)."""
    return training_read(c.trainings.cancel(who, modelId, trainingId))


@router.delete("/{trainingId}", responses=documented(404), status_code=204, response_class=Response)
def delete_training(modelId: str, trainingId: str, who: PrincipalDep, c: ContainerDep) -> Response:
    """Soft delete: hidden, history kept; does NOT cancel a running training."""
    c.trainings.delete(who, modelId, trainingId)
    return Response(status_code=204)


@router.get(
    "/{trainingId}/weights",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **documented(404, 409, 422)},
)
def training_weights(
    modelId: str,
    trainingId: str,
    who: PrincipalDep,
    c: ContainerDep,
    weights_format: Annotated[WeightsFormat, Query(alias="format")] = WeightsFormat.DIFFUSERS,
    dtype: WeightsDtype = WeightsDtype.FP32,
    step: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """The LoRA `.safetensors` with its metadata (trigger word, base model, settings).
    `format=diffusers` (default) for diffusers' `load_lora_weights`, `kohya` for ComfyUI and
    AUTOMATIC1111/Forge; `dtype=fp32` (default) or `fp16`. The default is the stored file.
    `step=N`: the checkpoint kept at step N (`…/checkpoints`; 404 `checkpoint_not_found`)."""
    stream = c.weights.open(
        who, modelId, trainingId, weights_format=weights_format, dtype=dtype, step=step
    )
    stem = trainingId if step is None else f"{trainingId}-step{step}"
    name = weights_filename(stem, weights_format, dtype)
    return StreamingResponse(
        file_chunks(stream),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
