"""/v1/predictions: seed 003 generations mixing trained models with scales."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from loraforge.api.errors import documented
from loraforge.api.presenters import prediction_created, prediction_read
from loraforge.api.routers.events import event_stream
from loraforge.api.schemas.work import PredictionCreate, PredictionCreated, PredictionRead
from loraforge.domain.work import Prediction, ScaleConfig
from loraforge.http.deps import ContainerDep, LinksDep, PrincipalDep
from loraforge.services.predictions import PredictionRequest

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.post(
    "",
    responses=documented(400, 404, 409, 413, 422),
    status_code=201,
    response_model=PredictionCreated,
)
def create_prediction(
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
        webhook_events=body.webhookEvents,
    )
    prediction = c.predictions.create(who, request)
    return prediction_created(prediction)


@router.get("/{predictionId}", responses=documented(404), response_model=PredictionRead)
def get_prediction(
    predictionId: str, who: PrincipalDep, c: ContainerDep, links: LinksDep
) -> PredictionRead:
    prediction = c.predictions.get(who, predictionId)
    return prediction_read(prediction, links)


@router.get(
    "/{predictionId}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **documented(404)},
)
async def prediction_events(
    predictionId: str, request: Request, who: PrincipalDep, c: ContainerDep, links: LinksDep
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
        present=lambda p: prediction_read(p, links).model_dump(mode="json"),
        terminal=lambda p: p.status.terminal,
    )


@router.delete(
    "/{predictionId}", responses=documented(404), status_code=204, response_class=Response
)
def delete_prediction(predictionId: str, who: PrincipalDep, c: ContainerDep) -> Response:
    """Soft delete: hidden, history kept."""
    c.predictions.delete(who, predictionId)
    return Response(status_code=204)
