"""ORM tables. Wire schemas and domain entities live elsewhere; rows are mapped at the edge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so Alembic migrations are stable on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = UtcDateTime()


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    # Kept readable: it signs webhooks, so it must be usable, like a session secret.
    webhook_secret: Mapped[str | None] = mapped_column(String(100))


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (Index("ix_models_account_created", "account_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    display_name: Mapped[str] = mapped_column(String(200))
    custom_model_type: Mapped[str | None] = mapped_column(String(100))
    base_model: Mapped[str] = mapped_column(String(100))
    # Descriptive fields a wire format carries that the core does not interpret (PhotoGPT's
    # age/gender, Scenario's shortDescription/parameters...), kept and echoed.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (
        Index("ix_images_model_kind_created", "model_id", "kind", "created_at", "id"),
        Index("ix_images_account_created", "account_id", "created_at"),
        Index("ix_images_origin_last_used", "origin", "last_used_at"),
        # imageType=all filters on several kinds: this index still yields the page order.
        Index("ix_images_model_created", "model_id", "created_at", "id"),
        # An upload's exact duplicates among its model's images, without reading them all.
        Index("ix_images_model_sha256", "model_id", "sha256"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    caption: Mapped[str] = mapped_column(Text, default="")
    caption_source: Mapped[str] = mapped_column(String(8), default="none")  # user|auto|none
    description: Mapped[str] = mapped_column(Text, default="")
    original_key: Mapped[str] = mapped_column(String(64), index=True)
    display_key: Mapped[str] = mapped_column(String(64), index=True)
    display_mime: Mapped[str] = mapped_column(String(32))
    thumbnail_key: Mapped[str] = mapped_column(String(64), index=True)
    thumbnail_mime: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    last_used_at: Mapped[datetime] = mapped_column(Timestamp)
    prediction_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # Which wire format brought it in (native, photogpt, runware, scenario): retention rules
    # such as Runware's 30 days after last use apply per origin.
    origin: Mapped[str] = mapped_column(String(16), default="native")


class ImageQualityRow(Base):
    """What the dataset check measured of an image's display variant (``display_key``): once
    the image's bytes are replaced the row is stale, and ignored until measured again."""

    __tablename__ = "image_quality"

    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    display_key: Mapped[str] = mapped_column(String(64))
    phash: Mapped[str] = mapped_column(String(16))
    sharpness: Mapped[float] = mapped_column(Float)
    luma: Mapped[float] = mapped_column(Float)
    dark_share: Mapped[float] = mapped_column(Float)
    bright_share: Mapped[float] = mapped_column(Float)
    faces: Mapped[int] = mapped_column(Integer)


class TrainingRow(Base):
    __tablename__ = "trainings"
    __table_args__ = (Index("ix_trainings_model_created", "model_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    status: Mapped[str] = mapped_column(String(16))
    strength: Mapped[int] = mapped_column(Integer)
    speed: Mapped[str] = mapped_column(String(16))
    trigger_word: Mapped[str] = mapped_column(String(32))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_events: Mapped[list[str] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    artifact_key: Mapped[str | None] = mapped_column(String(64), index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Set when an image it trained on was erased (POST /v1/images/{id}/erase): its weights
    # and other artifacts are gone, its history and receipt stay.
    erased_at: Mapped[datetime | None] = mapped_column(Timestamp)


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    output_image_ids: Mapped[list[str]] = mapped_column(JSON)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_events: Mapped[list[str] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)


class PredictionModelRow(Base):
    """The models a prediction mixed besides its first (which owns the outputs): its
    outputs are listed under these too."""

    __tablename__ = "prediction_models"

    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id"), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True, index=True)


class CaptionRunRow(Base):
    """A job captioning a model's training images (``POST /v1/models/{id}/captions``, or an
    upload without a caption while a captioning model is configured)."""

    __tablename__ = "caption_runs"
    __table_args__ = (Index("ix_caption_runs_model_created", "model_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    status: Mapped[str] = mapped_column(String(16))
    overwrite: Mapped[bool] = mapped_column(Boolean)
    image_ids: Mapped[list[str]] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    captioned: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_available", "state", "available_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    available_at: Mapped[datetime] = mapped_column(Timestamp)


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "delivered_at", "failed_at", "next_attempt_at"),
        # A run's deliveries go out in sequence order; two with one number cannot both commit.
        Index("ix_webhook_deliveries_run_sequence", "run_id", "sequence", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    failed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(36))
    sequence: Mapped[int | None] = mapped_column(Integer)


class TrainingBlobRow(Base):
    """Blobs a training's frozen manifest uses: kept while the training exists."""

    __tablename__ = "training_blobs"

    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id"), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class PredictionBlobRow(Base):
    """Blobs of a prediction's input pictures (init and mask images): held from the
    transaction that commits the prediction to the one that ends it, so deleting the image
    they came from cannot take them from a queued run, and a rerun of its job reads the same
    bytes. An erasure of the picture deletes its rows at once."""

    __tablename__ = "prediction_blobs"

    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id"), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class TaskReceiptRow(Base):
    """What a client task id produced, so a repeated id returns the first result."""

    __tablename__ = "task_receipts"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class TrainingPairRow(Base):
    __tablename__ = "training_pairs"

    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_image_id: Mapped[str] = mapped_column(String(36))
    target_image_id: Mapped[str] = mapped_column(String(36))
    instruction: Mapped[str] = mapped_column(Text)


class SigningKeyRow(Base):
    """The server's Ed25519 receipt-signing key: one row (``slot`` "receipts"), made once by
    whichever process needs it first; every API and worker process reads the same."""

    __tablename__ = "signing_keys"

    slot: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw 32-byte seed
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw 32 bytes
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class TrainingReceiptRow(Base):
    """A succeeded training's signed receipt, frozen: ``payload`` is what was signed."""

    __tablename__ = "training_receipts"

    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class TrainingSampleRow(Base):
    """A sample image a training rendered at one of its sample steps (issue 13 §2)."""

    __tablename__ = "training_samples"
    __table_args__ = (
        Index("ix_training_samples_training_step", "training_id", "step", "position"),
    )

    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"), primary_key=True)
    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id"))
    step: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)


class TrainingCheckpointRow(Base):
    """A training's LoRA kept at one of its sample steps: its blob lives while the row does."""

    __tablename__ = "training_checkpoints"

    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float | None] = mapped_column(Float)
    blob_key: Mapped[str] = mapped_column(String(64), index=True)


class TrainingSampleSheetRow(Base):
    """The image that shows every sample of a training, made when it succeeds."""

    __tablename__ = "training_sample_sheets"

    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id"), primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"))
