"""Samples, checkpoints and the sample sheet of a training (issue 13 §2).

A worker stores each round the trainer hands over (``SampleRecorder.record``): the images'
and the checkpoint's blobs first, then their rows in one lease-guarded transaction that adopts
the blobs (``blob_refs``) and holds the model's row, so a concurrent delete of the training or
its model either comes first (the round is dropped and its blobs released) or sees the rows
and removes them (``purge``). Reading them is
``services.training_outputs``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from loraforge.domain.entities import ImageKind
from loraforge.domain.samples import Checkpoint, Sample, SamplePlan, SampleRound, SheetCell
from loraforge.domain.work import Training
from loraforge.ports import BlobStore, SampleSheets, UnitOfWork, UnitOfWorkFactory
from loraforge.services.blob_refs import BlobReferences
from loraforge.services.image_bytes import PreparedImage
from loraforge.services.jobs import JobService, Lease
from loraforge.services.output_images import OutputImages


def sample_plan_of(training: Training) -> SamplePlan | None:
    """The training's frozen sample plan (None for trainings from before samples)."""
    frozen = training.manifest.get("sampling")
    return SamplePlan.from_manifest(frozen) if frozen else None


def live(uow: UnitOfWork, training: Training) -> bool:
    """In a write transaction: the training and its model still exist and the training was not
    erased. Holds the model's row (deletes of the training and of the model take it too) and the
    training's (an erase updates it) until the transaction ends."""
    if uow.models.get(training.account_id, training.model_id, lock=True) is None:
        return False
    current = uow.trainings.get(training.id, lock="update")
    return current is not None and current.deleted_at is None and current.erased_at is None


def purge(uow: UnitOfWork, training_ids: Collection[str]) -> set[str]:
    """In a write transaction, before the trainings (or their model) are marked deleted:
    remove the trainings' samples, sample sheets and checkpoints (rows and sample images);
    returns the blob keys to ``BlobReferences.release`` after the commit."""
    keys: set[str] = set()
    image_ids: list[str] = []
    outputs = uow.training_outputs
    for training_id in training_ids:
        image_ids += [s.image_id for s in outputs.samples(training_id)]
        if (sheet := outputs.sheet(training_id)) is not None:
            image_ids.append(sheet)
        keys |= {c.blob_key for c in outputs.checkpoints(training_id)}
    images = [uow.images.get_unscoped(image_id) for image_id in image_ids]
    outputs.remove(training_ids)
    for image in images:
        if image is not None:
            keys |= image.blob_keys()
            uow.images.delete(image.id)
    return keys


@dataclass(frozen=True)
class StoredRound:
    samples: list[Sample]
    checkpoint: Checkpoint | None


class SampleRecorder:
    """The worker's side: store what the trainer rendered, make the sheet at the end."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        jobs: JobService,
        blobs: BlobStore,
        outputs: OutputImages,
        sheets: SampleSheets,
    ) -> None:
        self._uow = uow
        self._jobs = jobs
        self._blobs = blobs
        self._refs = BlobReferences(uow=uow, blobs=blobs)
        self._outputs = outputs
        self._sheets = sheets

    def record(
        self,
        lease: Lease,
        training: Training,
        sampled: SampleRound,
        *,
        announce: Callable[[UnitOfWork, Sample], None] | None = None,
    ) -> StoredRound | None:
        """Store a round; None when it was not (training or model deleted, the step already
        stored by an earlier attempt). ``LeaseLost`` when another attempt holds the job.
        ``announce`` is called for each sample in the transaction that stores it (the
        ``training.sample`` webhook)."""
        prepared = [
            self._outputs.prepare(
                account_id=training.account_id,
                model_id=training.model_id,
                prediction_id=None,
                data=s.image,
                name=f"{training.id}-step{sampled.step}-{s.position}.png",
                kind=ImageKind.SAMPLE,
            )
            for s in sampled.samples
        ]
        stored = StoredRound(
            samples=[
                Sample(training.id, p.image.id, sampled.step, s.position, s.prompt, s.seed)
                for p, s in zip(prepared, sampled.samples, strict=True)
            ],
            checkpoint=self._store_checkpoint(training, sampled),
        )
        written = False
        try:
            with self._jobs.guarded(lease) as uow:
                if live(uow, training) and not _has_step(uow, training.id, sampled.step):
                    self._add(uow, prepared, stored, sampled.checkpoint)
                    if announce is not None:
                        for sample in stored.samples:
                            announce(uow, sample)
                    uow.commit()
                    written = True
        finally:
            if not written:
                self._outputs.discard(prepared)
                if stored.checkpoint is not None:
                    self._refs.release({stored.checkpoint.blob_key})
        return stored if written else None

    def _store_checkpoint(self, training: Training, sampled: SampleRound) -> Checkpoint | None:
        if sampled.checkpoint is None:
            return None
        with sampled.checkpoint.open("rb") as stream:
            blob = self._blobs.put_file(stream)
        return Checkpoint(training.id, sampled.step, sampled.loss, blob.key)

    def _add(
        self,
        uow: UnitOfWork,
        prepared: list[PreparedImage],
        stored: StoredRound,
        checkpoint_file: Path | None,
    ) -> None:
        self._outputs.add(uow, prepared)
        for sample in stored.samples:
            uow.training_outputs.add_sample(sample)
        if stored.checkpoint is not None and checkpoint_file is not None:
            # Identical LoRAs share a blob: keep a concurrent sweep from removing it.
            self._refs.adopt(uow, {stored.checkpoint.blob_key: lambda: checkpoint_file.open("rb")})
            uow.training_outputs.add_checkpoint(stored.checkpoint)

    def prepare_sheet(self, training: Training) -> PreparedImage | None:
        """The sample sheet's image, stored but not yet added (``add_sheet``); None when the
        training has no samples."""
        plan = sample_plan_of(training)
        with self._uow() as uow:
            samples = uow.training_outputs.samples(training.id)
            images = {s.image_id: uow.images.get_unscoped(s.image_id) for s in samples}
        cells = []
        for sample in samples:
            image = images[sample.image_id]
            if image is None:  # deleted by its owner meanwhile
                continue
            with self._blobs.open(image.original_key) as stream:
                data = stream.read()
            cells.append(SheetCell(data, f"step {sample.step} · {sample.prompt}"))
        if not cells:
            return None
        columns = len(plan.prompts) if plan else max(s.position for s in samples) + 1
        return self._outputs.prepare(
            account_id=training.account_id,
            model_id=training.model_id,
            prediction_id=None,
            data=self._sheets.render(cells, columns=columns),
            name=f"{training.id}-sample-sheet.png",
            kind=ImageKind.SAMPLE,
        )

    def add_sheet(self, uow: UnitOfWork, training: Training, sheet: PreparedImage) -> bool:
        """In the transaction that completes the training: add the sheet; False when the
        training or its model is gone (the caller discards it)."""
        if not live(uow, training):
            return False
        self._outputs.add(uow, [sheet])
        uow.training_outputs.set_sheet(training.id, sheet.image.id)
        return True

    def discard(self, prepared: list[PreparedImage]) -> None:
        self._outputs.discard(prepared)


def _has_step(uow: UnitOfWork, training_id: str, step: int) -> bool:
    return any(s.step == step for s in uow.training_outputs.samples(training_id))
