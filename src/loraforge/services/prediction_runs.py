"""Runs a prediction job on a worker: LoRAs mixed with their scales, outputs stored as Images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loraforge.domain.ml import GenerationSpec, LoraWeights
from loraforge.domain.work import JobKind, Prediction, RunStatus
from loraforge.ports import BaseModelCatalog, Clock, Generator, UnitOfWork, UnitOfWorkFactory
from loraforge.services.image_bytes import PreparedImage
from loraforge.services.images import ImageService
from loraforge.services.jobs import JobService, Lease
from loraforge.services.lora_cache import LoraCache, TrainingErased
from loraforge.services.run_endings import RunEndings, RunKind
from loraforge.services.webhooks import WebhookService


class PredictionRunner:
    kind = JobKind.PREDICTION

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        jobs: JobService,
        images: ImageService,
        generator: Generator,
        catalog: BaseModelCatalog,
        webhooks: WebhookService,
        clock: Clock,
        lora_cache: LoraCache,
    ) -> None:
        self._uow = uow
        self._jobs = jobs
        self._images = images
        self._generator = generator
        self._catalog = catalog
        self._endings = RunEndings(PREDICTIONS, webhooks=webhooks, clock=clock)
        self._clock = clock
        self._lora_cache = lora_cache
        lora_cache.on_drop(generator.forget)

    def run(self, lease: Lease, lost: Callable[[], bool]) -> None:
        self._lora_cache.prune()  # copies of trainings erased since (by any process) go first
        try:
            paths = self._copy_weights(lease.job.subject_id)
        except TrainingErased:
            paths = {}  # erased while copying: _begin sees it and fails the prediction
        begun = self._begin(lease, paths)
        if begun is None:
            return
        prediction, spec = begun
        try:
            outputs = self._generator.generate(spec)
            prepared = [
                self._images.outputs.prepare(
                    account_id=prediction.account_id,
                    model_id=prediction.owner_model_id,
                    prediction_id=prediction.id,
                    data=data,
                    name=f"{prediction.id}-{n}.{prediction.output_format}",
                )
                for n, data in enumerate(outputs)
            ]
        except Exception as exc:
            self._end(lease, prediction, RunStatus.FAILED, error=f"Generation failed: {exc}")
            raise
        if not self._end(lease, prediction, RunStatus.SUCCEEDED, outputs=prepared):
            self._images.outputs.discard(prepared)

    def give_up(self, uow: UnitOfWork, prediction_id: str, reason: str) -> None:
        self._endings.give_up(uow, prediction_id, reason)

    def _copy_weights(self, prediction_id: str) -> dict[str, Path]:
        """Local copies of the weights the prediction mixes (none when it will not run)."""
        with self._uow() as uow:
            prediction = uow.predictions.get(prediction_id)
            if prediction is None or prediction.status.terminal:
                return {}
            trainings = [uow.trainings.get(c.training_id) for c in prediction.scale_configs]
        usable = {t.id: t for t in trainings if t is not None and t.artifact_key is not None}
        if len(usable) < len(trainings) or any(t.erased_at for t in usable.values()):
            return {}  # _begin fails it
        return self._lora_cache.copies(list(usable.values()))

    def _begin(
        self, lease: Lease, paths: dict[str, Path]
    ) -> tuple[Prediction, GenerationSpec] | None:
        # The erase check comes after the copies were written (_copy_weights): an erase
        # committed before this read is seen here; one committed after it drops the copies.
        with self._jobs.guarded(lease) as uow:
            prediction = uow.predictions.get(lease.job.subject_id)
            if prediction is None or prediction.status.terminal:
                self._jobs.finish(uow, lease)
                uow.commit()
                return None
            loras = []
            base_name = ""
            trainings = [uow.trainings.get(c.training_id) for c in prediction.scale_configs]
            if erased := [t.id for t in trainings if t is not None and t.erased_at is not None]:
                # Queued before an erase of a training it mixes: those weights are gone.
                error = f"Training {erased[0]} was erased (an image it used was erased)."
                self._endings.finish(uow, prediction, RunStatus.FAILED, error)
                self._jobs.finish(uow, lease, error=error)
                uow.commit()
                self._lora_cache.drop(erased)
                return None
            for config, training in zip(prediction.scale_configs, trainings, strict=True):
                # create() checked every training succeeded, and none is erased: copied.
                assert training is not None
                base_name = training.manifest["baseModel"]
                path = paths[training.id]
                loras.append(LoraWeights(name=training.id, path=path, scale=config.scale))
            prediction.start(self._clock.now())
            uow.predictions.update(prediction)
            uow.commit()
        spec = GenerationSpec(
            base_model=self._catalog.get(base_name),
            prompt=prediction.prompt,
            seed=prediction.seed,
            width=prediction.width,
            height=prediction.height,
            num_images=prediction.num_images,
            guidance_scale=prediction.guidance_scale,
            num_inference_steps=prediction.num_inference_steps,
            output_format=prediction.output_format,
            loras=loras,
        )
        return prediction, spec

    def _end(
        self,
        lease: Lease,
        prediction: Prediction,
        status: RunStatus,
        *,
        error: str | None = None,
        outputs: list[PreparedImage] | None = None,
    ) -> bool:
        def record(uow: UnitOfWork) -> None:
            self._images.outputs.add(uow, outputs or [])
            prediction.output_image_ids = [o.image.id for o in outputs or []]
            self._endings.finish(uow, prediction, status, error)

        return self._jobs.complete(lease, record, error=error)


def _carry(stored: Prediction, result: Prediction) -> None:
    stored.output_image_ids = result.output_image_ids


def _payload(prediction: Prediction) -> dict[str, Any]:
    return {
        "id": prediction.id,
        "status": prediction.status.value,
        "outputImageIds": prediction.output_image_ids,
        "seed": prediction.seed,
        "error": prediction.error,
    }


PREDICTIONS = RunKind(
    JobKind.PREDICTION, rows=lambda uow: uow.predictions, carry=_carry, payload=_payload
)
