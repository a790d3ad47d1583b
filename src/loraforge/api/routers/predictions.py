"""/v1/predictions: seed 003 generations mixing trained models with scales."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from loraforge.api.errors import documented
from loraforge.api.presenters import content_url
from loraforge.api.routers.events import event_stream
from loraforge.api.schemas.work import (
    PredictionCreate,
    PredictionCreated,
    PredictionRead,
    ProgressRead,
)
from loraforge.bootstrap import Container
from loraforge.domain.entities import ImageVariant
from loraforge.domain.work import Prediction, ScaleConfig
from loraforge.http.deps import ContainerDep, PrincipalDep
from loraforge.services.predictions import PredictionRequest

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


def prediction_read(request: Request, c: Container, p: Prediction) -> PredictionRead:
    return PredictionRead(
        id=p.id,
        status=p.status.value,
        outputImages=[
            content_url(request, c, image_id, ImageVariant.ORIGINAL)
            for image_id in p.output_image_ids
        ],
        outputImageIds=p.output_image_ids,
        seed=p.seed,
        prompt=p.prompt,
        scaleConfigs={
            s.key: {"scale": s.scale, "modelId": s.model_id, "trainingId": s.training_id}
            for s in p.scale_configs
        },
        image_size={"width": p.width, "height": p.height},
        num_images=p.num_images,
        output_format=p.output_format,
        guidance_scale=p.guidance_scale,
        num_inference_steps=p.num_inference_steps,
        progress=ProgressRead.of(p.progress),
        createdAt=p.created_at,
        startedAt=p.started_at,
        finishedAt=p.finished_at,
        error=p.error,
    )


@router.post(
    "",
    responses=documented(400, 404, 409, 413, 422),
    status_code=201,
    response_model=PredictionCreated,
)
async def create_prediction(
    body: PredictionCreate, who: PrincipalDep, c: ContainerDep
) -> PredictionCreated:
    request = PredictionRequest(
        scale_configs=[
            ScaleConfig(key=k, scale=v.scale, model_id=v.modelId, training_id=v.trainingId)
            for k, v in body.scaleConfigs.items()
        ],
        prompt=body.prompt,
        seed=body.seed,
        width=body.image_size.width,
        height=body.image_size.height,
        num_images=body.num_images,
        output_format=body.output_format,
        guidance_scale=body.guidance_scale,
        num_inference_steps=body.num_inference_steps,
        webhook_url=body.webhookUrl,
    )
    prediction = await run_in_threadpool(c.predictions.create, who, request)
    return PredictionCreated(predictionId=prediction.id)


@router.get("/{predictionId}", responses=documented(404), response_model=PredictionRead)
async def get_prediction(
    predictionId: str, request: Request, who: PrincipalDep, c: ContainerDep
) -> PredictionRead:
    prediction = await run_in_threadpool(c.predictions.get, who, predictionId)
    return prediction_read(request, c, prediction)


@router.get(
    "/{predictionId}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **documented(404)},
)
async def prediction_events(
    predictionId: str, request: Request, who: PrincipalDep, c: ContainerDep
) -> StreamingResponse:
    """Server-Sent Events: an `update` event on every change, then `done` (or `error` with the
    error body, e.g. `not_found` when the prediction is deleted)."""

    def load() -> Prediction:
        return c.predictions.get(who, predictionId)

    await run_in_threadpool(load)  # 404 before the stream starts
    return event_stream(
        request,
        who,
        subject=("prediction", predictionId),
        load=load,
        present=lambda p: prediction_read(request, c, p).model_dump(mode="json"),
        terminal=lambda p: p.status.terminal,
    )


@router.delete(
    "/{predictionId}", responses=documented(404), status_code=204, response_class=Response
)
async def delete_prediction(predictionId: str, who: PrincipalDep, c: ContainerDep) -> Response:
    """Soft delete: hidden, history kept."""
    await run_in_threadpool(c.predictions.delete, who, predictionId)
    return Response(status_code=204)
