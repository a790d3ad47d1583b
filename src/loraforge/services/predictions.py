"""Predictions (seed 003): mix trained LoRAs with scales and generate images."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from loraforge.domain.entities import Principal
from loraforge.domain.errors import Conflict, InvalidInput, NotFound
from loraforge.domain.events import PREDICTION_EVENTS, chosen_events
from loraforge.domain.ml import BaseModel
from loraforge.domain.work import (
    DEFAULT_STRENGTH,
    JobKind,
    Prediction,
    RunStatus,
    ScaleConfig,
)
from loraforge.ports import (
    BaseModelCatalog,
    Clock,
    IdFactory,
    JobQueue,
    UnitOfWork,
    UnitOfWorkFactory,
)
from loraforge.services.fetch_slots import FetchPermit
from loraforge.services.input_pictures import InputPictures, StoredInput
from loraforge.services.jobs import JobService
from loraforge.services.prediction_inputs import InputRequest, check_inputs, pictures
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
    inputs: InputRequest = field(default_factory=InputRequest)
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
        catalog: BaseModelCatalog,
        pictures: InputPictures,
    ) -> None:
        self._uow = uow
        self._catalog = catalog
        self._pictures = pictures
        self._jobs = jobs
        self._queue = queue
        self._clock = clock
        self._new_id = new_id

    def create(
        self, who: Principal, request: PredictionRequest, *, permit: FetchPermit | None = None
    ) -> Prediction:
        """Queue a prediction and hand it to the job queue once committed. Input pictures
        given as data URIs or URLs are decoded (URLs fetched holding ``permit``) before the
        write transaction; every check that needs no picture comes first."""
        if not request.scale_configs:
            raise InvalidInput("scaleConfigs needs at least one entry.", field="scaleConfigs")
        if request.webhook_url is not None:
            check_webhook_url(request.webhook_url)
        events = chosen_events(
            request.webhook_events, PREDICTION_EVENTS, webhook_url=request.webhook_url
        )
        named = pictures(request.inputs)
        with self._uow() as uow:
            base_name = self._base_model(uow, who, request)
        check_inputs(request.inputs, base_name, self._configured(base_name))
        stored = self._pictures.store(who, named, permit=permit)
        try:
            prediction = self._add(who, request, stored, events)
        except BaseException:
            self._pictures.discard(stored)
            raise
        self._queue.submit(prediction.id)
        return prediction

    def _add(
        self,
        who: Principal,
        request: PredictionRequest,
        stored: dict[str, StoredInput],
        events: list[str] | None,
    ) -> Prediction:
        inputs = request.inputs
        with self._uow(write=True) as uow:
            # again, locking the trainings until the commit: an erase of one waits, or came first
            self._base_model(uow, who, request, lock=True)
            held = self._pictures.hold(uow, who, pictures(inputs), stored)
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
                negative_prompt=inputs.negative_prompt,
                scheduler=inputs.scheduler,
                init_image=held.get("init_image"),
                strength=DEFAULT_STRENGTH if inputs.strength is None else inputs.strength,
                mask_image=held.get("mask_image"),
                webhook_events=events,
            )
            prediction.progress.total_steps = request.num_inference_steps
            uow.predictions.add(prediction)
            self._jobs.enqueue(uow, JobKind.PREDICTION, prediction.id)
            uow.commit()
        return prediction

    def _configured(self, name: str) -> BaseModel | None:
        try:
            return self._catalog.get(name)
        except KeyError:
            return None

    def _base_model(
        self, uow: UnitOfWork, who: Principal, request: PredictionRequest, *, lock: bool = False
    ) -> str:
        """The one base model of the request's trainings (each must have succeeded, not have
        been erased, and hold the checkpoint a config names). ``lock``: in a write transaction,
        share-lock the trainings (in id order) until it ends."""
        trainings = {
            training_id: uow.trainings.get(
                training_id, account_id=who.account_id, lock="share" if lock else None
            )
            for training_id in sorted({c.training_id for c in request.scale_configs})
        }
        base_models = set()
        for config in request.scale_configs:
            training = trainings[config.training_id]
            model = uow.models.get(who.account_id, config.model_id)
            if training is None or model is None or training.model_id != config.model_id:
                raise NotFound(
                    f"No training {config.training_id} of model {config.model_id}.",
                    field=f"scaleConfigs.{config.key}",
                )
            if training.erased_at is not None:
                raise Conflict(
                    f"Training {config.training_id} was erased (an image it used was "
                    "erased): it cannot be used any more.",
                    code="training_erased",
                    field=f"scaleConfigs.{config.key}",
                )
            if training.status is not RunStatus.SUCCEEDED:
                raise Conflict(
                    f"Training {config.training_id} is {training.status.value}, not succeeded.",
                    code="training_not_ready",
                )
            if config.checkpoint_step is not None and not any(
                c.step == config.checkpoint_step
                for c in uow.training_outputs.checkpoints(training.id)
            ):
                raise NotFound(
                    f"Training {config.training_id} has no checkpoint at step "
                    f"{config.checkpoint_step}.",
                    code="checkpoint_not_found",
                    field=f"scaleConfigs.{config.key}.checkpointStep",
                )
            base_models.add(training.manifest["baseModel"])
        if len(base_models) > 1:
            names = ", ".join(sorted(base_models))
            raise InvalidInput(
                "All trainings in scaleConfigs must share one base model: a LoRA loads only "
                f"into the model it was trained on (these are on {names}).",
                code="mixed_base_models",
                field="scaleConfigs",
            )
        return str(base_models.pop())

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
