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
from loraforge.http.url_uploads import run_url_upload
from loraforge.services.inline_images import is_url
from loraforge.services.prediction_inputs import Control, InputRequest
from loraforge.services.predictions import PredictionRequest

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.post(
    "",
    responses=documented(400, 404, 409, 413, 415, 422, 507),
    status_code=201,
    response_model=PredictionCreated,
)
async def create_prediction(
    body: PredictionCreate, who: PrincipalDep, c: ContainerDep
) -> PredictionCreated:
    """A prediction may start from pictures given as URLs: those are fetched on the fetch
    threads with a fetch slot (see ``http.url_uploads``), everything else on the thread pool."""
    request = _request(body)
    if any(is_url(value) for value in (body.init_image, body.mask_image) if value):
        prediction = await run_url_upload(
            c, who, lambda permit: c.predictions.create(who, request, permit=permit)
        )
    else:
        prediction = await run_in_threadpool(c.predictions.create, who, request)
    return prediction_created(prediction)


def _request(body: PredictionCreate) -> PredictionRequest:
    control = None
    if (given := body.control) is not None:
        control = Control(type=given.type, image=given.image, scale=given.scale)
    return PredictionRequest(
        scale_configs=[
            ScaleConfig(
                key=k,
                scale=v.scale,
                model_id=v.modelId,
                training_id=v.trainingId,
                checkpoint_step=v.checkpointStep,
            )
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
        inputs=InputRequest(
            negative_prompt=body.negative_prompt,
            scheduler=body.scheduler,
            init_image=body.init_image,
            strength=body.strength,
            mask_image=body.mask_image,
            reference_images=tuple(body.reference_images or ()),
            reference_scale=body.reference_scale,
            control=control
            and Control(type=control.type, image=control.image, scale=control.scale),
        ),
        webhook_events=body.webhookEvents,
    )


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
