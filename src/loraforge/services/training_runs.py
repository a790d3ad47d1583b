"""Runs a training job on a worker: the manifest in, a LoRA blob out, progress on the way."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loraforge.domain.events import ProgressThrottle, SampleEvent
from loraforge.domain.ml import (
    Hyperparameters,
    TrainingProgress,
    TrainingSample,
    TrainingSpec,
    TrainingStopped,
)
from loraforge.domain.samples import SampleRound
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
from loraforge.services.image_bytes import PreparedImage
from loraforge.services.jobs import JobService, Lease, LeaseLost
from loraforge.services.receipts import PreparedReceipt, ReceiptService
from loraforge.services.run_endings import RunEndings, RunKind
from loraforge.services.run_events import RunEvents
from loraforge.services.training_samples import SampleRecorder, sample_plan_of
from loraforge.services.weights import lora_title

log = logging.getLogger(__name__)

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
        receipts: ReceiptService | None = None,
        samples: SampleRecorder | None = None,
    ) -> None:
        self._uow = uow
        self._samples = samples  # None: samples are not rendered (unit tests' worlds)
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
        self._receipts = receipts  # None: no receipts signed (tests of the loop alone)

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
                on_sample=watcher.sample if self._samples is not None else None,
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
        prepared = (
            self._receipts.prepare(training, weights.read_bytes()) if self._receipts else None
        )
        sheet = self._sample_sheet(training)
        if self._end(
            lease, training, RunStatus.SUCCEEDED, weights=weights, receipt=prepared, sheet=sheet
        ):
            self._forget_if_erased(training)
        shutil.rmtree(workdir, ignore_errors=True)

    def _sample_sheet(self, training: Training) -> PreparedImage | None:
        """The sheet of the training's samples; a sheet that cannot be made (a sample image
        unreadable) costs the training nothing but the sheet."""
        if self._samples is None:
            return None
        try:
            return self._samples.prepare_sheet(training)
        except Exception:
            log.exception("the sample sheet of training %s could not be made", training.id)
            return None

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
            sampling=sample_plan_of(training),
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
        receipt: PreparedReceipt | None = None,
        sheet: PreparedImage | None = None,
    ) -> bool:
        sheet_added = False

        def record(uow: UnitOfWork) -> None:
            nonlocal sheet_added
            stored = uow.trainings.get(training.id, lock="update")  # against an erase
            erased = stored is not None and stored.erased_at is not None
            if weights is not None and training.artifact_key is not None and not erased:
                # Identical weights share a blob: keep a concurrent sweep from removing it.
                self._refs.adopt(uow, {training.artifact_key: lambda: weights.open("rb")})
            if sheet is not None and self._samples is not None and not erased:
                sheet_added = self._samples.add_sheet(uow, training, sheet)
            self._endings.finish(uow, training, status, error)
            if receipt is not None and self._receipts is not None:
                self._receipts.freeze(uow, training.id, receipt)

        done = self._jobs.complete(lease, record, error=error)
        if sheet is not None and self._samples is not None and not (done and sheet_added):
            self._samples.discard([sheet])
        return done

    def _forget_if_erased(self, training: Training) -> None:
        """An image the training used was erased while it ran: its new weights are not kept."""
        with self._uow() as uow:
            stored = uow.trainings.get(training.id)
        if stored is not None and stored.erased_at is not None and training.artifact_key:
            self._refs.release({training.artifact_key})

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

    @property
    def samples_rendered(self) -> bool:
        return self._samples is not None

    def record_samples(self, lease: Lease, training: Training, sampled: SampleRound) -> None:
        if self._samples is not None:
            self._samples.record(
                lease,
                training,
                sampled,
                announce=lambda uow, s: self.events.sample(
                    uow,
                    training,
                    SampleEvent(step=s.step, prompt=s.prompt, seed=s.seed, image_id=s.image_id),
                ),
            )

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
    if stored.erased_at is None:  # erased while it ran: its weights are not kept
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
        self._plan = sample_plan_of(training) if runner.samples_rendered else None
        self._sampled_up_to = 0  # the last step whose samples are done (this attempt)
        self._sampling_s = 0.0  # time spent rendering and storing samples (this attempt)
        self._rounds = 0
        self._reported_at = self._started
        self._announce = runner.progress_throttle(training)
        self._clock = runner.clock

    def report(self, progress: TrainingProgress) -> None:
        if self._first_step is None:  # a resumed attempt starts past step 0
            self._first_step = progress.step - 1
            self._sampled_up_to = self._first_step
        self._reported_at = time.monotonic()
        eta = self._eta(progress.step, progress.total_steps)
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
            self._save(announce=announce)

    def sample(self, sampled: SampleRound) -> None:
        """The trainer rendered a round of samples (and maybe a checkpoint): store them, which
        shows them on the training's SSE stream as ``sample`` events and in its listings. The
        one place a sample round is announced."""
        try:
            self._runner.record_samples(self._lease, self._training, sampled)
        except LeaseLost:
            self._lease_lost = True
        # Rendering happened between the step's report and now; storing just now.
        self._sampling_s += time.monotonic() - self._reported_at
        self._rounds += 1
        self._sampled_up_to = sampled.step
        progress = self._training.progress
        eta = self._eta(progress.step, progress.total_steps)
        progress.eta_seconds = round(eta, 1) if eta is not None else None
        self._save()

    def _eta(self, step: int, total: int) -> float | None:
        """Seconds left: the steps left at this attempt's time per step, plus the sample
        rounds left at the time a round took (before the first: the plan's estimate in
        steps). Sampling is part of the work, so the ETA counts it."""
        assert self._first_step is not None
        done = step - self._first_step
        if done <= 0:
            return None
        elapsed = time.monotonic() - self._started
        per_step = max(elapsed - self._sampling_s, 0.0) / done
        eta = per_step * (total - step)
        if self._plan is not None:
            rounds_left = sum(1 for s in self._plan.steps if s > self._sampled_up_to)
            per_round = (
                self._sampling_s / self._rounds
                if self._rounds
                else per_step * self._plan.round_cost
            )
            eta += per_round * rounds_left
        return eta

    def _save(self, *, announce: bool = False) -> None:
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
