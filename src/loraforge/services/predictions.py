"""Predictions (seed 003): mix trained LoRAs with scales and generate images."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from loraforge.domain.entities import Principal
from loraforge.domain.errors import Conflict, InvalidInput, NotFound
from loraforge.domain.events import PREDICTION_EVENTS, chosen_events
from loraforge.domain.work import JobKind, Prediction, RunStatus, ScaleConfig
from loraforge.ports import Clock, IdFactory, JobQueue, UnitOfWorkFactory
from loraforge.services.jobs import JobService
from loraforge.services.webhook_urls import check_webhook_url


@dataclass(frozen=True)
class PredictionRequest:
    scale_configs: list[ScaleConfig]
    prompt: str
    seed: int | None
    width: int
    height: int
    num_images: int
    output_format: str
    guidance_scale: float
    num_inference_steps: int
    webhook_url: str | None = None
    webhook_events: list[str] | None = None  # the lifecycle events announced; None: default


class PredictionService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        jobs: JobService,
        queue: JobQueue,
        clock: Clock,
        new_id: IdFactory,
    ) -> None:
        self._uow = uow
        self._jobs = jobs
        self._queue = queue
        self._clock = clock
        self._new_id = new_id

    def create(self, who: Principal, request: PredictionRequest) -> Prediction:
        """Queue a prediction and hand it to the job queue once committed."""
        if not request.scale_configs:
            raise InvalidInput("scaleConfigs needs at least one entry.", field="scaleConfigs")
        if request.webhook_url is not None:
            check_webhook_url(request.webhook_url)
        events = chosen_events(
            request.webhook_events, PREDICTION_EVENTS, webhook_url=request.webhook_url
        )
        with self._uow(write=True) as uow:
            base_models = set()
            for config in request.scale_configs:
                training = uow.trainings.get(config.training_id, account_id=who.account_id)
                model = uow.models.get(who.account_id, config.model_id)
                if training is None or model is None or training.model_id != config.model_id:
                    raise NotFound(
                        f"No training {config.training_id} of model {config.model_id}.",
                        field=f"scaleConfigs.{config.key}",
                    )
                if training.status is not RunStatus.SUCCEEDED:
                    raise Conflict(
                        f"Training {config.training_id} is {training.status.value}, not succeeded.",
                        code="training_not_ready",
                    )
                base_models.add(training.manifest["baseModel"])
            if len(base_models) > 1:
                raise InvalidInput(
                    "All trainings in scaleConfigs must share one base model.",
                    field="scaleConfigs",
                )
            prediction = Prediction(
                id=self._new_id(),
                account_id=who.account_id,
                status=RunStatus.QUEUED,
                scale_configs=request.scale_configs,
                prompt=request.prompt,
                seed=request.seed if request.seed is not None else secrets.randbelow(2**31),
                width=request.width,
                height=request.height,
                num_images=request.num_images,
                output_format=request.output_format,
                guidance_scale=request.guidance_scale,
                num_inference_steps=request.num_inference_steps,
                created_at=self._clock.now(),
                webhook_url=request.webhook_url,
                webhook_events=events,
            )
            prediction.progress.total_steps = request.num_inference_steps
            uow.predictions.add(prediction)
            self._jobs.enqueue(uow, JobKind.PREDICTION, prediction.id)
            uow.commit()
        self._queue.submit(prediction.id)
        return prediction

    def get(self, who: Principal, prediction_id: str) -> Prediction:
        with self._uow() as uow:
            prediction = uow.predictions.get(prediction_id, account_id=who.account_id)
        if prediction is None:
            raise NotFound(f"No prediction {prediction_id}.")
        return prediction

    def delete(self, who: Principal, prediction_id: str) -> None:
        with self._uow(write=True) as uow:
            prediction = uow.predictions.get(prediction_id, account_id=who.account_id)
            if prediction is None:
                raise NotFound(f"No prediction {prediction_id}.")
            prediction.deleted_at = self._clock.now()
            uow.predictions.update(prediction)
            uow.commit()
