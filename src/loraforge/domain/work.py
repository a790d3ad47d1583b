"""Trainings, predictions, the jobs that run them, and webhook deliveries."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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


class TrainingSpeed(enum.StrEnum):
    FAST = "fast"
    HIGH_QUALITY = "high_quality"


@dataclass
class Progress:
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eta_seconds: float | None = None


@dataclass
class Training:
    id: str
    account_id: str
    model_id: str
    status: RunStatus
    strength: int
    speed: TrainingSpeed
    trigger_word: str
    manifest: dict[str, Any]
    created_at: datetime
    progress: Progress = field(default_factory=Progress)
    webhook_url: str | None = None
    error: str | None = None
    artifact_key: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class ScaleConfig:
    key: str
    scale: float
    model_id: str
    training_id: str


@dataclass
class Prediction:
    id: str
    account_id: str
    status: RunStatus
    scale_configs: list[ScaleConfig]
    prompt: str
    seed: int
    width: int
    height: int
    num_images: int
    output_format: str
    guidance_scale: float
    num_inference_steps: int
    created_at: datetime
    progress: Progress = field(default_factory=Progress)
    webhook_url: str | None = None
    error: str | None = None
    output_image_ids: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deleted_at: datetime | None = None

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


class JobKind(enum.StrEnum):
    TRAINING = "training"
    PREDICTION = "prediction"


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
