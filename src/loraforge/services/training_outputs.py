"""Reading a training's samples, checkpoints and sample sheet (issue 13 §2)."""

from __future__ import annotations

from dataclasses import dataclass

from loraforge.domain.entities import Image, Principal
from loraforge.domain.errors import NotFound
from loraforge.domain.samples import Checkpoint, Sample
from loraforge.domain.work import Training
from loraforge.ports import BlobStore, UnitOfWork, UnitOfWorkFactory
from loraforge.services.trainings import TrainingService
from loraforge.services.weights import ensure_not_erased


@dataclass(frozen=True)
class SampleView:
    sample: Sample
    image: Image


@dataclass(frozen=True)
class CheckpointView:
    checkpoint: Checkpoint
    sample_image_ids: list[str]


class TrainingOutputs:
    """A training's samples, checkpoints and sheet, as its owner sees them; 410 ``erased`` once an
    image the training used was erased (they were deleted with its weights)."""

    def __init__(
        self, *, uow: UnitOfWorkFactory, trainings: TrainingService, blobs: BlobStore
    ) -> None:
        self._uow = uow
        self._trainings = trainings
        self._blobs = blobs

    def samples(self, who: Principal, model_id: str, training_id: str) -> list[SampleView]:
        """By step, then prompt; samples whose image was deleted are left out."""
        return self.samples_of(self._training(who, model_id, training_id))

    def samples_of(self, training: Training) -> list[SampleView]:
        """``samples`` of a training the caller already read as its owner's."""
        with self._uow() as uow:
            return _sample_views(uow, training.id)

    def checkpoints(self, who: Principal, model_id: str, training_id: str) -> list[CheckpointView]:
        training = self._training(who, model_id, training_id)
        with self._uow() as uow:
            samples = uow.training_outputs.samples(training.id)
            return [
                CheckpointView(c, [s.image_id for s in samples if s.step == c.step])
                for c in uow.training_outputs.checkpoints(training.id)
            ]

    def sheet(self, who: Principal, model_id: str, training_id: str) -> Image:
        """The sample sheet's image; 404 ``sample_sheet_not_ready`` until the training made
        one (it does when it succeeds)."""
        training = self._training(who, model_id, training_id)
        with self._uow() as uow:
            image_id = uow.training_outputs.sheet(training.id)
            image = uow.images.get_unscoped(image_id) if image_id is not None else None
        if image is None:
            raise NotFound(
                f"Training {training_id} has no sample sheet yet.", code="sample_sheet_not_ready"
            )
        return image

    def export_entries(self, who: Principal, training: Training) -> dict[str, bytes]:
        """The export's ``sample-sheet.png`` when the training has a sheet (``ExtraEntries``)."""
        with self._uow() as uow:
            image_id = uow.training_outputs.sheet(training.id)
            image = uow.images.get_unscoped(image_id) if image_id is not None else None
        if image is None:
            return {}
        with self._blobs.open(image.original_key) as stream:
            return {"sample-sheet.png": stream.read()}

    def _training(self, who: Principal, model_id: str, training_id: str) -> Training:
        training = self._trainings.get(who, model_id, training_id)
        ensure_not_erased(training)
        return training


def _sample_views(uow: UnitOfWork, training_id: str) -> list[SampleView]:
    views = []
    for sample in uow.training_outputs.samples(training_id):
        image = uow.images.get_unscoped(sample.image_id)
        if image is not None:
            views.append(SampleView(sample, image))
    return views
