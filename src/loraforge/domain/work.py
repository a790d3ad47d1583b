"""Trainings, predictions, the jobs that run them, and webhook deliveries."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from loraforge.domain.errors import IllegalStatusMove


class RunStatus(enum.StrEnum):
    """Seed 003 statuses, shared by trainings and predictions."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED})

MOVES: Mapping[RunStatus, frozenset[RunStatus]] = {
    # Failed while queued: its job ran out of attempts before a worker began it.
    RunStatus.QUEUED: frozenset({RunStatus.PROCESSING, RunStatus.FAILED, RunStatus.CANCELED}),
    # Processing again: a worker takes over the job of one that died.
    RunStatus.PROCESSING: frozenset(
        {RunStatus.PROCESSING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED}
    ),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELED: frozenset(),
}
"""The legal status moves of a run: from each status, the statuses it may move to."""


class TrainingSpeed(enum.StrEnum):
    FAST = "fast"
    HIGH_QUALITY = "high_quality"


@dataclass
class Progress:
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eta_seconds: float | None = None


@dataclass(kw_only=True)
class Run:
    """What trainings and predictions share: their run fields and the legal moves between
    statuses (``MOVES``). Services move a run only through ``start`` and ``finish``, which
    refuse an illegal move with ``IllegalStatusMove``."""

    noun: ClassVar[str] = "run"

    id: str
    account_id: str
    status: RunStatus
    created_at: datetime
    progress: Progress = field(default_factory=Progress)
    webhook_url: str | None = None
    # The lifecycle events its webhook announces (domain/events.py); None: the default, one
    # webhook when the run ends.
    webhook_events: list[str] | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deleted_at: datetime | None = None

    def start(self, at: datetime) -> None:
        """A worker begins the run, or takes it over from one that died: ``started_at`` keeps
        the first start, so it spans every attempt."""
        self._check_move(RunStatus.PROCESSING)
        self.status = RunStatus.PROCESSING
        self.started_at = self.started_at or at

    def finish(self, status: RunStatus, at: datetime, error: str | None = None) -> None:
        """End the run with a terminal ``status``; a succeeded run has done all its steps."""
        self._check_move(status)
        if not status.terminal:
            raise IllegalStatusMove(f"{status.value} does not end a {self.noun}.")
        self.status = status
        self.error = error
        self.finished_at = at
        if status is RunStatus.SUCCEEDED:
            total = self.progress.total_steps
            self.progress = Progress(
                step=total, total_steps=total, loss=self.progress.loss, eta_seconds=0.0
            )

    def _check_move(self, to: RunStatus) -> None:
        """Raise ``IllegalStatusMove`` unless the run may move to ``to`` now."""
        if to in MOVES[self.status]:
            return
        if self.status.terminal:
            raise IllegalStatusMove(
                f"The {self.noun} already finished ({self.status.value}).", code="already_finished"
            )
        raise IllegalStatusMove(
            f"A {self.noun} cannot move from {self.status.value} to {to.value}."
        )


@dataclass(kw_only=True)
class Training(Run):
    noun: ClassVar[str] = "training"

    model_id: str
    strength: int
    speed: TrainingSpeed
    trigger_word: str
    manifest: dict[str, Any]
    artifact_key: str | None = None
    cancel_requested: bool = False
    # An image it trained on was erased: its artifacts are gone; status, history and receipt
    # stay. Such a training serves nothing (410 ``erased``) and mixes into no prediction.
    erased_at: datetime | None = None

    def request_cancel(self, at: datetime) -> None:
        """Queued: canceled at once. Processing: flagged, and its worker stops within one
        step (it then finishes the run as canceled)."""
        self._check_move(RunStatus.CANCELED)
        self.cancel_requested = True
        if self.status is RunStatus.QUEUED:
            self.finish(RunStatus.CANCELED, at)


@dataclass(frozen=True)
class ScaleConfig:
    key: str
    scale: float
    model_id: str
    training_id: str
    checkpoint_step: int | None = None  # the training's LoRA at this step instead of its last


@dataclass(frozen=True)
class InputImage:
    """A picture a prediction starts from (``init_image``) or repaints by (``mask_image``).

    ``source`` is what the client named: an image id of the account, a URL, or for a data URI
    ``data:<sha256 of its bytes>``. ``blob_key`` holds the decoded and checked picture (an
    image's display variant: orientation applied, metadata stripped) that the run uses; the
    prediction holds that blob until it ends (or the picture is erased), and keeps this record
    of it after.
    """

    source: str
    blob_key: str


DEFAULT_STRENGTH = 0.75
# A prediction's defaults where the request names none (the native API's); training samples
# render with them too (``domain.samples``), so a sample is what a default prediction gives.
DEFAULT_SIDE = 512  # width and height in pixels
DEFAULT_GUIDANCE_SCALE = 7.5
DEFAULT_INFERENCE_STEPS = 20


@dataclass(kw_only=True)
class Prediction(Run):
    noun: ClassVar[str] = "prediction"

    scale_configs: list[ScaleConfig]
    prompt: str
    seed: int
    width: int
    height: int
    num_images: int
    output_format: str
    guidance_scale: float
    num_inference_steps: int
    negative_prompt: str = ""
    scheduler: str | None = None  # one of domain.ml.SCHEDULERS; None: the base model's own
    init_image: InputImage | None = None
    strength: float = DEFAULT_STRENGTH  # how much of init_image is repainted (0..1)
    mask_image: InputImage | None = None
    output_image_ids: list[str] = field(default_factory=list)

    @property
    def input_blob_keys(self) -> set[str]:
        """The blobs its input pictures live in."""
        return {i.blob_key for i in (self.init_image, self.mask_image) if i is not None}

    @property
    def owner_model_id(self) -> str:
        """The model whose ``output`` images the outputs are: the first scale config's."""
        return self.scale_configs[0].model_id

    @property
    def mixed_model_ids(self) -> list[str]:
        """The other models it mixed, once each; its outputs are listed under them too."""
        others = dict.fromkeys(c.model_id for c in self.scale_configs)
        others.pop(self.owner_model_id)
        return list(others)


@dataclass(kw_only=True)
class CaptionRun(Run):
    """Captioning a model's training images with the configured model, as a job: those whose
    ``captionSource`` is ``none``, or all of them (``overwrite``). ``image_ids`` are frozen
    when the run is made; ``progress.step`` counts the images done."""

    noun: ClassVar[str] = "caption run"

    model_id: str
    overwrite: bool
    image_ids: list[str]
    captioned: int = 0  # images that got a new caption
    failed: int = 0  # images the captioning model failed on (left as they were)


class JobKind(enum.StrEnum):
    TRAINING = "training"
    PREDICTION = "prediction"
    CAPTION = "caption"
    INSPECTION = "inspection"  # measure one training image for the dataset check


RUN_KINDS = frozenset({JobKind.TRAINING, JobKind.PREDICTION, JobKind.CAPTION})
"""Jobs that run a training, a prediction or a caption run: seconds to minutes of the
accelerator each. A worker runs them one at a time; the quick ones (``INSPECTION``:
milliseconds of CPU) run beside them, so a new upload is measured while a long training goes
on."""


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass
class Job:
    """The queue's view of a training or prediction: who holds it, until when, how often tried.

    ``lease_token`` changes on every claim; a write carrying an older token is refused, so a
    worker that lost its lease can no longer write results.
    """

    id: str
    kind: JobKind
    subject_id: str
    state: JobState
    attempts: int
    max_attempts: int
    created_at: datetime
    available_at: datetime
    lease_owner: str | None = None
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    last_error: str | None = None


@dataclass
class WebhookDelivery:
    id: str
    account_id: str
    url: str
    event: str
    body: str  # the exact JSON that is signed and sent
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str | None = None
    # The run it announces and its place among the run's deliveries: a run's deliveries are
    # sent one after another in this order (None: a delivery made before runs were numbered).
    run_id: str | None = None
    sequence: int | None = None
