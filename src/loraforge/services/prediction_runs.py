"""Runs a prediction job on a worker: LoRAs mixed with their scales, outputs stored as Images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loraforge.domain.errors import NotFound
from loraforge.domain.ml import GenerationSpec, LoraWeights
from loraforge.domain.work import InputImage, JobKind, Prediction, RunStatus, Training
from loraforge.ports import (
    BaseModelCatalog,
    BlobStore,
    Clock,
    Generator,
    UnitOfWork,
    UnitOfWorkFactory,
)
from loraforge.services.image_bytes import PreparedImage
from loraforge.services.images import ImageService
from loraforge.services.jobs import AfterCommit, JobService, Lease
from loraforge.services.lora_cache import LoraCache, TrainingErased, cache_name
from loraforge.services.run_endings import RunEndings, RunKind
from loraforge.services.run_events import RunEvents


class PredictionRunner:
    kind = JobKind.PREDICTION

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        jobs: JobService,
        blobs: BlobStore,
        images: ImageService,
        generator: Generator,
        catalog: BaseModelCatalog,
        events: RunEvents,
        clock: Clock,
        lora_cache: LoraCache,
    ) -> None:
        self._uow = uow
        self._jobs = jobs
        self._blobs = blobs
        self._images = images
        self._generator = generator
        self._catalog = catalog
        self._events = events
        self._endings = RunEndings(PREDICTIONS, events=events, clock=clock)
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

    def give_up(self, uow: UnitOfWork, prediction_id: str, reason: str) -> AfterCommit:
        self._endings.give_up(uow, prediction_id, reason)
        keys = uow.predictions.unpin(prediction_id)  # none if it had ended already
        return lambda: self._images.inputs.release(keys)

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
            try:
                checkpoints = [
                    (c.training_id, s, _weights_key(uow, usable[c.training_id], s))
                    for c in prediction.scale_configs
                    if (s := c.checkpoint_step) is not None
                ]
            except NotFound:
                return {}  # its training was deleted since: _begin fails it
        finals = [
            usable[c.training_id] for c in prediction.scale_configs if c.checkpoint_step is None
        ]
        return self._lora_cache.copies(list({t.id: t for t in finals}.values()), checkpoints)

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
            error = _erased(trainings) or _missing_input(uow, prediction)
            if error is not None:
                self._endings.finish(uow, prediction, RunStatus.FAILED, error)
                keys = uow.predictions.unpin(prediction.id)
                self._jobs.finish(uow, lease, error=error)
                uow.commit()
                self._images.inputs.release(keys)
                self._lora_cache.drop([t.id for t in trainings if t and t.erased_at])
                return None
            for config, training in zip(prediction.scale_configs, trainings, strict=True):
                # create() checked every training succeeded, and none is erased: copied.
                assert training is not None
                base_name = training.manifest["baseModel"]
                path = paths.get(cache_name(training.id, config.checkpoint_step))
                if path is None:  # its checkpoint went with its training, deleted since
                    error = (
                        f"The weights of training {training.id} at step "
                        f"{config.checkpoint_step} are no longer stored."
                    )
                    self._endings.finish(uow, prediction, RunStatus.FAILED, error)
                    keys = uow.predictions.unpin(prediction.id)
                    self._jobs.finish(uow, lease, error=error)
                    uow.commit()
                    self._images.inputs.release(keys)
                    return None
                loras.append(LoraWeights(name=training.id, path=path, scale=config.scale))
            first = prediction.started_at is None  # a worker taking over is no new start
            # Read while their blobs are locked (``_missing_input``): an erasure waits.
            init_image, mask_image = map(self._read, (prediction.init_image, prediction.mask_image))
            prediction.start(self._clock.now())
            uow.predictions.update(prediction)
            if first:
                self._events.emit(uow, prediction, "prediction.started")
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
            negative_prompt=prediction.negative_prompt,
            scheduler=prediction.scheduler,
            init_image=init_image,
            mask_image=mask_image,
            strength=prediction.strength,
        )
        return prediction, spec

    def _read(self, picture: InputImage | None) -> bytes | None:
        """An input picture's bytes: its blob is held until the prediction ends."""
        if picture is None:
            return None
        with self._blobs.open(picture.blob_key) as stream:
            return stream.read()

    def _end(
        self,
        lease: Lease,
        prediction: Prediction,
        status: RunStatus,
        *,
        error: str | None = None,
        outputs: list[PreparedImage] | None = None,
    ) -> bool:
        """End the prediction and drop its holds on its input pictures in one transaction,
        then remove those pictures' blobs that no other row references."""
        released: set[str] = set()

        def record(uow: UnitOfWork) -> None:
            self._images.outputs.add(uow, outputs or [])
            prediction.output_image_ids = [o.image.id for o in outputs or []]
            self._endings.finish(uow, prediction, status, error)
            released.update(uow.predictions.unpin(prediction.id))

        if not self._jobs.complete(lease, record, error=error):
            return False
        self._images.inputs.release(released)
        return True


def _erased(trainings: list[Training | None]) -> str | None:
    """Queued before an erase of a training it mixes: those weights are gone."""
    for training in trainings:
        if training is not None and training.erased_at is not None:
            return f"Training {training.id} was erased (an image it used was erased)."
    return None


def _missing_input(uow: UnitOfWork, prediction: Prediction) -> str | None:
    """Why an input picture cannot be read (its image was erased after the prediction was
    queued, which dropped its hold), or None. Locks the pictures' blobs until the transaction
    ends, so an erasure cannot remove them before they are read."""
    uow.blob_locks.lock(prediction.input_blob_keys)
    held = uow.predictions.pinned(prediction.id)
    pictures = {"init_image": prediction.init_image, "mask_image": prediction.mask_image}
    for field, picture in pictures.items():
        if picture is not None and picture.blob_key not in held:
            return (
                f"The {field} picture ({picture.source}) is missing: its image was erased "
                "after the prediction was queued."
            )
    return None


def _weights_key(uow: UnitOfWork, training: Training, step: int | None) -> str:
    """The final weights, or the checkpoint at ``step`` (create() checked it exists; its
    training deleted since, it is gone and the prediction fails saying so)."""
    if step is None:
        assert training.artifact_key is not None
        return training.artifact_key
    for checkpoint in uow.training_outputs.checkpoints(training.id):
        if checkpoint.step == step:
            return checkpoint.blob_key
    raise NotFound(f"Training {training.id} no longer has a checkpoint at step {step}.")


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
