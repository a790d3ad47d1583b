"""Runs a training job on a worker: the manifest in, a LoRA blob out, progress on the way."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loraforge.domain.events import ProgressThrottle
from loraforge.domain.ml import (
    Hyperparameters,
    TrainingProgress,
    TrainingSample,
    TrainingSpec,
    TrainingStopped,
)
from loraforge.domain.weights import lora_metadata
from loraforge.domain.work import JobKind, Progress, RunStatus, Training
from loraforge.ports import (
    BaseModelCatalog,
    BlobStore,
    Clock,
    Trainer,
    UnitOfWork,
    UnitOfWorkFactory,
)
from loraforge.services.blob_refs import BlobReferences
from loraforge.services.jobs import JobService, Lease, LeaseLost
from loraforge.services.run_endings import RunEndings, RunKind
from loraforge.services.run_events import RunEvents
from loraforge.services.weights import lora_title

PROGRESS_EVERY_S = 0.5  # progress writes are throttled; cancel is checked at every step


class TrainingRunner:
    kind = JobKind.TRAINING

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        jobs: JobService,
        blobs: BlobStore,
        trainer: Trainer,
        catalog: BaseModelCatalog,
        events: RunEvents,
        clock: Clock,
        workdir: Path,
    ) -> None:
        self._uow = uow
        self._jobs = jobs
        self._blobs = blobs
        self._refs = BlobReferences(uow=uow, blobs=blobs)
        self._trainer = trainer
        self._catalog = catalog
        # The training's event sink: a rendered sample is announced with
        # ``events.sample(uow, training, SampleEvent(...))`` in the transaction storing it.
        self.events = events
        self._endings = RunEndings(TRAININGS, events=events, clock=clock)
        self.clock = clock
        self._workdir = workdir

    def run(self, lease: Lease, lost: Callable[[], bool]) -> None:
        training = self._begin(lease)
        if training is None:
            return
        workdir = self._workdir / training.id
        watcher = _Watcher(self, lease, training, lost)
        try:
            weights = self._trainer.train(
                self._spec(training),
                workdir=workdir,
                report=watcher.report,
                should_stop=watcher.should_stop,
            )
        except TrainingStopped:
            if watcher.canceled:
                self._end(lease, training, RunStatus.CANCELED)
                shutil.rmtree(workdir, ignore_errors=True)
            return  # lease lost: the attempt that holds the job now carries on
        except Exception as exc:
            self._end(lease, training, RunStatus.FAILED, error=f"Training failed: {exc}")
            raise
        with weights.open("rb") as stream:
            stored = self._blobs.put_file(stream)
        training.artifact_key = stored.key
        self._end(lease, training, RunStatus.SUCCEEDED, weights=weights)
        shutil.rmtree(workdir, ignore_errors=True)

    def give_up(self, uow: UnitOfWork, training_id: str, reason: str) -> None:
        self._endings.give_up(uow, training_id, reason)

    def _begin(self, lease: Lease) -> Training | None:
        with self._jobs.guarded(lease) as uow:
            training = uow.trainings.get(lease.job.subject_id)
            if training is None or training.status.terminal:
                self._jobs.finish(uow, lease)
                uow.commit()
                return None
            first = training.started_at is None  # a worker taking over is no new start
            training.start(self.clock.now())
            uow.trainings.update(training)
            if first:
                self.events.emit(uow, training, "training.started")
            uow.commit()
            return training

    def _spec(self, training: Training) -> TrainingSpec:
        manifest = training.manifest
        samples = []
        for item in manifest["images"]:
            with self._blobs.open(item["displayKey"]) as stream:
                samples.append(TrainingSample(image=stream.read(), caption=item["caption"]))
        base = self._catalog.get(manifest["baseModel"])
        return TrainingSpec(
            base_model=base,
            samples=samples,
            hyper=Hyperparameters(**manifest["hyperparameters"]),
            metadata=lora_metadata(training, base, title=self._title(training)),
        )

    def _title(self, training: Training) -> str:
        with self._uow() as uow:
            return lora_title(uow, training)

    def _end(
        self,
        lease: Lease,
        training: Training,
        status: RunStatus,
        error: str | None = None,
        *,
        weights: Path | None = None,
    ) -> None:
        def record(uow: UnitOfWork) -> None:
            if weights is not None and training.artifact_key is not None:
                # Identical weights share a blob: keep a concurrent sweep from removing it.
                self._refs.adopt(uow, {training.artifact_key: lambda: weights.open("rb")})
            self._endings.finish(uow, training, status, error)

        self._jobs.complete(lease, record, error=error)

    def save_progress(self, lease: Lease, training: Training, *, announce: bool = False) -> None:
        """Write the training's progress; ``announce``: with a ``training.progress`` event."""
        with self._jobs.guarded(lease) as uow:
            current = uow.trainings.get(training.id)
            if current is not None:
                current.progress = training.progress
                uow.trainings.update(current)
                if announce:
                    self.events.progress(uow, current)
            uow.commit()

    def progress_throttle(self, training: Training) -> ProgressThrottle | None:
        """When the training's progress is announced (None: it does not want the event)."""
        if not RunEvents.wanted(training, "training.progress"):
            return None
        return ProgressThrottle(
            total_steps=training.progress.total_steps,
            last_step=training.progress.step,
            last_at=self.clock.now(),
        )

    def cancel_requested(self, training_id: str) -> bool:
        with self._uow() as uow:
            current = uow.trainings.get(training_id)
        return current is None or current.cancel_requested


def _carry(stored: Training, result: Training) -> None:
    stored.artifact_key = result.artifact_key
    stored.progress = result.progress


def _payload(training: Training) -> dict[str, Any]:
    return {
        "id": training.id,
        "modelId": training.model_id,
        "status": training.status.value,
        "triggerWord": training.trigger_word,
        "error": training.error,
    }


TRAININGS = RunKind(
    JobKind.TRAINING, rows=lambda uow: uow.trainings, carry=_carry, payload=_payload
)


class _Watcher:
    """The trainer's callbacks: throttled progress writes and events; cancel and lease checks
    per step."""

    def __init__(
        self, runner: TrainingRunner, lease: Lease, training: Training, lost: Callable[[], bool]
    ) -> None:
        self._runner = runner
        self._lease = lease
        self._training = training
        self._lost = lost
        self._lease_lost = False
        self.canceled = False
        self._last_write = 0.0
        self._started = time.monotonic()
        self._first_step: int | None = None
        self._announce = runner.progress_throttle(training)
        self._clock = runner.clock

    def report(self, progress: TrainingProgress) -> None:
        if self._first_step is None:  # a resumed attempt starts past step 0
            self._first_step = progress.step - 1
        done = progress.step - self._first_step
        elapsed = time.monotonic() - self._started
        eta = elapsed / done * (progress.total_steps - progress.step) if done > 0 else None
        self._training.progress = Progress(
            step=progress.step,
            total_steps=progress.total_steps,
            loss=progress.loss,
            eta_seconds=round(eta, 1) if eta is not None else None,
        )
        announce = self._announce is not None and self._announce.due(
            progress.step, self._clock.now()
        )
        if announce or time.monotonic() - self._last_write >= PROGRESS_EVERY_S:
            self._last_write = time.monotonic()
            try:
                self._runner.save_progress(self._lease, self._training, announce=announce)
            except LeaseLost:
                self._lease_lost = True

    def should_stop(self) -> bool:
        if self._lease_lost or self._lost():
            return True
        # A primary-key read per step: cancel takes effect within one training step.
        self.canceled = self.canceled or self._runner.cancel_requested(self._training.id)
        return self.canceled
