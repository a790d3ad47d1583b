"""Repositories for trainings, predictions, jobs and webhook deliveries."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, false, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from loraforge.adapters.db.tables import (
    AccountRow,
    JobRow,
    PredictionBlobRow,
    PredictionModelRow,
    PredictionRow,
    TrainingBlobRow,
    TrainingRow,
    WebhookDeliveryRow,
)
from loraforge.domain.work import (
    InputImage,
    Job,
    JobKind,
    JobState,
    Prediction,
    Progress,
    RunStatus,
    ScaleConfig,
    Training,
    TrainingSpeed,
    WebhookDelivery,
)
from loraforge.ports.repositories import RowLock

_TRAINING = (
    "id", "account_id", "model_id", "strength", "trigger_word", "manifest", "webhook_url",
    "webhook_events", "error", "artifact_key", "cancel_requested", "created_at", "started_at",
    "finished_at", "deleted_at", "erased_at",
)  # fmt: skip
_IDS_PER_QUERY = 500  # bound parameters per IN (…): well under every dialect's limit
_PREDICTION_PARAMS = (
    "prompt", "seed", "width", "height", "num_images", "output_format", "guidance_scale",
    "num_inference_steps", "negative_prompt", "scheduler", "strength",
)  # fmt: skip
_INPUT_IMAGES = ("init_image", "mask_image")
_PREDICTION = (
    "id", "account_id", "output_image_ids", "webhook_url", "webhook_events", "error",
    "created_at", "started_at", "finished_at", "deleted_at",
)  # fmt: skip
_JOB = (
    "id", "subject_id", "attempts", "max_attempts", "created_at", "available_at", "lease_owner",
    "lease_token", "lease_expires_at", "last_error",
)  # fmt: skip
_DELIVERY = (
    "id", "account_id", "url", "event", "body", "created_at", "next_attempt_at", "attempts",
    "delivered_at", "failed_at", "last_error", "run_id", "sequence",
)  # fmt: skip


def _pick(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


def _progress(data: dict[str, Any]) -> Progress:
    return Progress(**data)


def _training(row: TrainingRow) -> Training:
    return Training(
        status=RunStatus(row.status),
        speed=TrainingSpeed(row.speed),
        progress=_progress(row.progress),
        **_pick(row, _TRAINING),
    )


def _training_row_values(t: Training) -> dict[str, Any]:
    return {
        "status": t.status.value,
        "speed": t.speed.value,
        "progress": vars(t.progress),
        **_pick(t, _TRAINING),
    }


def _prediction(row: PredictionRow) -> Prediction:
    params = dict(row.params)
    configs = [ScaleConfig(**c) for c in params.pop("scale_configs")]
    for name in _INPUT_IMAGES:
        if (given := params.get(name)) is not None:
            params[name] = InputImage(**given)
    return Prediction(
        status=RunStatus(row.status),
        scale_configs=configs,
        progress=_progress(row.progress),
        **params,
        **_pick(row, _PREDICTION),
    )


def _prediction_row_values(p: Prediction) -> dict[str, Any]:
    params = _pick(p, _PREDICTION_PARAMS)
    params["scale_configs"] = [vars(c) for c in p.scale_configs]
    for name in _INPUT_IMAGES:
        given = getattr(p, name)
        params[name] = None if given is None else vars(given)
    return {
        "status": p.status.value,
        "params": params,
        "progress": vars(p.progress),
        **_pick(p, _PREDICTION),
    }


class SqlTrainingRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, training: Training, *, pinned_blobs: set[str]) -> None:
        self._s.add(TrainingRow(**_training_row_values(training)))
        self._s.flush()
        self._s.add_all(TrainingBlobRow(training_id=training.id, blob_key=k) for k in pinned_blobs)

    def get(
        self, training_id: str, *, account_id: str | None = None, lock: RowLock | None = None
    ) -> Training | None:
        query = select(TrainingRow).where(TrainingRow.id == training_id)
        if account_id is not None:
            query = query.where(
                TrainingRow.account_id == account_id, TrainingRow.deleted_at.is_(None)
            )
        if lock is not None:
            # PostgreSQL: an erase's lock waits for this transaction, or this read waits for
            # the erase and then sees its ``erased_at`` (SQLite ignores it: one writer at once).
            query = query.with_for_update(read=lock == "share")
        row = self._s.scalars(query).first()
        return _training(row) if row else None

    def list_for_account(self, account_id: str) -> list[Training]:
        rows = self._s.scalars(
            select(TrainingRow)
            .where(TrainingRow.account_id == account_id)
            .order_by(TrainingRow.created_at.desc(), TrainingRow.id.desc())
        )
        return [_training(r) for r in rows]

    def unpin(self, training_id: str) -> set[str]:
        keys = set(
            self._s.scalars(
                select(TrainingBlobRow.blob_key).where(TrainingBlobRow.training_id == training_id)
            )
        )
        self._s.execute(delete(TrainingBlobRow).where(TrainingBlobRow.training_id == training_id))
        return keys

    def with_weights(self, training_ids: Collection[str]) -> set[str]:
        ids = sorted(set(training_ids))
        found: set[str] = set()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            found.update(
                self._s.scalars(
                    select(TrainingRow.id).where(
                        TrainingRow.id.in_(ids[start : start + _IDS_PER_QUERY]),
                        TrainingRow.artifact_key.is_not(None),
                        TrainingRow.erased_at.is_(None),
                    )
                )
            )
        return found

    def list_for_model(self, model_id: str) -> list[Training]:
        rows = self._s.scalars(
            select(TrainingRow)
            .where(TrainingRow.model_id == model_id, TrainingRow.deleted_at.is_(None))
            .order_by(TrainingRow.created_at.desc(), TrainingRow.id.desc())
        )
        return [_training(r) for r in rows]

    def update(self, training: Training) -> None:
        values = _training_row_values(training)
        self._s.execute(update(TrainingRow).where(TrainingRow.id == training.id).values(values))


class SqlPredictionRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, prediction: Prediction) -> None:
        self._s.add(PredictionRow(**_prediction_row_values(prediction)))
        self._s.flush()  # the links' foreign keys need the prediction's row first
        self._s.add_all(
            PredictionBlobRow(prediction_id=prediction.id, blob_key=k)
            for k in sorted(prediction.input_blob_keys)
        )
        if mixed := prediction.mixed_model_ids:
            self._s.add_all(
                PredictionModelRow(prediction_id=prediction.id, model_id=m) for m in mixed
            )

    def get(self, prediction_id: str, *, account_id: str | None = None) -> Prediction | None:
        query = select(PredictionRow).where(PredictionRow.id == prediction_id)
        if account_id is not None:
            query = query.where(
                PredictionRow.account_id == account_id, PredictionRow.deleted_at.is_(None)
            )
        row = self._s.scalars(query).first()
        return _prediction(row) if row else None

    def update(self, prediction: Prediction) -> None:
        values = _prediction_row_values(prediction)
        self._s.execute(
            update(PredictionRow).where(PredictionRow.id == prediction.id).values(values)
        )

    def using_trainings(self, account_id: str, training_ids: set[str]) -> list[Prediction]:
        # Scale configs live in the ``params`` JSON: read the account's, a page at a time.
        rows = self._s.scalars(
            select(PredictionRow)
            .where(PredictionRow.account_id == account_id)
            .order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
            .execution_options(yield_per=500)
        )
        return [
            prediction
            for prediction in map(_prediction, rows)
            if any(c.training_id in training_ids for c in prediction.scale_configs)
        ]

    def pinned(self, prediction_id: str) -> set[str]:
        return set(
            self._s.scalars(
                select(PredictionBlobRow.blob_key).where(
                    PredictionBlobRow.prediction_id == prediction_id
                )
            )
        )

    def unpin(self, prediction_id: str) -> set[str]:
        keys = self.pinned(prediction_id)
        self._s.execute(
            delete(PredictionBlobRow).where(PredictionBlobRow.prediction_id == prediction_id)
        )
        return keys

    def unpin_blobs(self, keys: Iterable[str]) -> set[str]:
        wanted = sorted(set(keys))
        held: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = PredictionBlobRow.blob_key.in_(wanted[start : start + 500])
            held.update(self._s.scalars(select(PredictionBlobRow.prediction_id).where(chunk)))
            self._s.execute(delete(PredictionBlobRow).where(chunk))
        return held


class SqlJobRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, job: Job) -> None:
        self._s.add(JobRow(kind=job.kind.value, state=job.state.value, **_pick(job, _JOB)))

    def for_subject(self, subject_id: str) -> Job | None:
        row = self._s.scalars(select(JobRow).where(JobRow.subject_id == subject_id)).first()
        return _job(row) if row else None

    def next_claimable(
        self,
        now: datetime,
        subject_id: str | None = None,
        *,
        kinds: Collection[JobKind] | None = None,
    ) -> Job | None:
        """The oldest queued job, or a running one whose lease has expired."""
        query = (
            select(JobRow)
            .where(
                or_(JobRow.state == JobState.QUEUED.value, _lease_expired(now)),
                JobRow.available_at <= now,
            )
            .order_by(JobRow.available_at, JobRow.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if subject_id is not None:
            query = query.where(JobRow.subject_id == subject_id)
        if kinds is not None:
            query = query.where(JobRow.kind.in_(sorted(k.value for k in kinds)))
        row = self._s.scalars(query).first()
        return _job(row) if row else None

    def stranded(self, now: datetime, *, queued_before: datetime | None) -> list[Job]:
        waiting = (
            (JobRow.state == JobState.QUEUED.value) & (JobRow.available_at < queued_before)
            if queued_before is not None
            else false()
        )
        query = (
            select(JobRow)
            .where(or_(_lease_expired(now), waiting))
            .order_by(JobRow.available_at, JobRow.created_at)
            .with_for_update(skip_locked=True)
        )
        return [_job(row) for row in self._s.scalars(query)]

    def save(self, job: Job, *, expected_token: str | None) -> bool:
        """Write ``job`` only if its lease token is still ``expected_token`` (fencing)."""
        result = self._s.execute(
            update(JobRow)
            .where(JobRow.id == job.id, _token_is(expected_token))
            .values(kind=job.kind.value, state=job.state.value, **_pick(job, _JOB))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _lease_expired(now: datetime) -> Any:
    return (JobRow.state == JobState.RUNNING.value) & (JobRow.lease_expires_at < now)


def _token_is(token: str | None) -> Any:
    return JobRow.lease_token.is_(None) if token is None else JobRow.lease_token == token


def _job(row: JobRow) -> Job:
    return Job(kind=JobKind(row.kind), state=JobState(row.state), **_pick(row, _JOB))


class SqlWebhookRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, delivery: WebhookDelivery) -> None:
        self._s.add(WebhookDeliveryRow(**_pick(delivery, _DELIVERY)))

    def due(self, now: datetime, *, limit: int) -> list[WebhookDelivery]:
        delivery = WebhookDeliveryRow
        earlier = aliased(WebhookDeliveryRow)
        # Read in the statement's snapshot: an earlier delivery counts as pending until its
        # delivered or failed mark is committed, so no sender can overtake it.
        earlier_pending = exists().where(
            earlier.run_id == delivery.run_id,
            earlier.sequence < delivery.sequence,
            earlier.delivered_at.is_(None),
            earlier.failed_at.is_(None),
        )
        rows = self._s.scalars(
            select(delivery)
            .where(
                delivery.delivered_at.is_(None),
                delivery.failed_at.is_(None),
                delivery.next_attempt_at <= now,
                ~earlier_pending,
            )
            .order_by(delivery.next_attempt_at, delivery.sequence)
            .limit(limit)
            .with_for_update(skip_locked=True, of=delivery)
        )
        return [WebhookDelivery(**_pick(r, _DELIVERY)) for r in rows]

    def last_sequence(self, run_id: str) -> int:
        found = self._s.scalar(
            select(func.max(WebhookDeliveryRow.sequence)).where(WebhookDeliveryRow.run_id == run_id)
        )
        return int(found or 0)

    def update(self, delivery: WebhookDelivery) -> None:
        self._s.execute(
            update(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.id == delivery.id)
            .values(**_pick(delivery, _DELIVERY))
        )

    def list_for_account(self, account_id: str) -> list[WebhookDelivery]:
        rows = self._s.scalars(
            select(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.account_id == account_id)
            .order_by(WebhookDeliveryRow.created_at)
        )
        return [WebhookDelivery(**_pick(r, _DELIVERY)) for r in rows]

    def get_secret(self, account_id: str) -> str | None:
        return self._s.scalar(select(AccountRow.webhook_secret).where(AccountRow.id == account_id))

    def set_secret(self, account_id: str, secret: str) -> None:
        self._s.execute(
            update(AccountRow).where(AccountRow.id == account_id).values(webhook_secret=secret)
        )
