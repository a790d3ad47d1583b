"""Contracts between the services and the outside world.

Each port is a Protocol; adapters implement them, ``bootstrap`` picks the implementation, tests
use fakes. Nothing here imports an infrastructure library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from loraforge.domain.entities import (
    Account,
    ApiKey,
    Image,
    ImageFormat,
    ImageKind,
    Model,
    ProcessedImage,
    StoredBlob,
    TrainingPair,
)
from loraforge.domain.ml import BaseModel, GenerationSpec, TrainingProgress, TrainingSpec
from loraforge.domain.work import Job, Prediction, Training, WebhookDelivery


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class BlobStore(Protocol):
    """Content-addressed bytes. Keys are the sha256 hex of the content, never user input."""

    def put_file(self, source: BinaryIO) -> StoredBlob:
        """Store the stream's bytes from its current position; atomic; identical bytes once."""
        ...

    def put_bytes(self, data: bytes) -> StoredBlob:
        """Store ``data``; atomic; identical bytes stored once."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Open a stored blob for reading; raises ``NotFound`` when absent."""
        ...

    def size(self, key: str) -> int:
        """Byte size of a stored blob; raises ``NotFound`` when absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove a blob; absent keys are ignored."""
        ...

    def iter_keys(self, *, older_than: datetime) -> Iterator[str]:
        """Keys of blobs last written before ``older_than`` (candidates for the sweep)."""
        ...

    def check(self) -> None:
        """Raise ``Unavailable`` when the store cannot be written and read."""
        ...

    def remove_stale_temp_files(self, *, older_than: datetime) -> int:
        """Remove partial writes left by a crash; return how many were removed."""
        ...


class ImageProcessor(Protocol):
    """Decodes, checks and derives variants from uploaded bytes."""

    def process(self, source: BinaryIO, *, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        """Validate the image in ``source`` (format from magic bytes, pixel cap before decoding,
        full decode) and return its metadata and derived display/thumbnail variants.

        Raises ``UnsupportedFormat`` (not an image of ``allowed``) or ``ImageRejected``.
        Leaves ``source`` at an unspecified position.
        """
        ...


class UrlFetcher(Protocol):
    """Fetches a user-supplied URL safely (SSRF-guarded, byte and time caps)."""

    def fetch(self, url: str, *, max_bytes: int) -> BinaryIO:
        """Return a seekable stream with the body, positioned at 0.

        Raises ``FetchFailed`` for every failure (blocked, refused, timed out, too large).
        """
        ...


class AccountRepository(Protocol):
    def add(self, account: Account) -> None: ...

    def get(self, account_id: str) -> Account | None: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey, *, key_hash: str) -> None: ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def find_by_prefix(self, prefix: str) -> list[tuple[ApiKey, str]]:
        """Keys whose public prefix matches, each with its stored hash."""
        ...

    def list(self) -> list[ApiKey]: ...

    def update(self, key: ApiKey) -> None: ...


class ModelRepository(Protocol):
    def add(self, model: Model) -> None: ...

    def get(self, account_id: str, model_id: str, *, lock: bool = False) -> Model | None:
        """A live (not deleted) model of the account; ``lock`` serialises writers on it."""
        ...

    def list(self, account_id: str, *, offset: int, limit: int) -> tuple[list[Model], int]:
        """Live models, newest first, and their total count."""
        ...

    def update(self, model: Model) -> None: ...


class ImageRepository(Protocol):
    def add(self, image: Image) -> None: ...

    def get(self, account_id: str, image_id: str) -> Image | None:
        """An image of the account, unless its model was deleted."""
        ...

    def get_unscoped(self, image_id: str) -> Image | None:
        """Any visible image, for signed links (the signature is the authorisation)."""
        ...

    def list_for_model(
        self, model_id: str, *, kinds: Iterable[ImageKind], offset: int, limit: int
    ) -> tuple[list[Image], int]:
        """The model's images of those kinds, newest first (stable), and their total count."""
        ...

    def count_for_model(self, model_id: str, kind: ImageKind) -> int: ...

    def update(self, image: Image) -> None: ...

    def delete(self, image_id: str) -> None: ...

    def referenced_blob_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` some row still references (images, training inputs, LoRAs)."""
        ...

    def touch(self, image_id: str, at: datetime) -> None:
        """Move the image's ``last_used_at`` forward to ``at`` (never backwards); only that
        column is written, so a concurrent replace is never undone."""
        ...

    def list_unused(self, origin: str, *, before: datetime, limit: int) -> list[Image]:
        """Images of ``origin`` (every account) last used before ``before``, oldest use first."""
        ...

    def delete_unused(self, image_id: str, *, before: datetime) -> bool:
        """Delete the image only while its last use is still before ``before`` (atomic against
        a concurrent ``touch``); True when it was deleted."""
        ...


class TrainingRepository(Protocol):
    def add(self, training: Training, *, pinned_blobs: set[str]) -> None:
        """Store a training and pin the blobs its frozen manifest uses."""
        ...

    def get(self, training_id: str, *, account_id: str | None = None) -> Training | None:
        """With ``account_id``: only that account's trainings that are not soft-deleted."""
        ...

    def list_for_model(self, model_id: str) -> list[Training]:
        """Live trainings, newest first."""
        ...

    def update(self, training: Training) -> None: ...


class PredictionRepository(Protocol):
    def add(self, prediction: Prediction) -> None: ...

    def get(self, prediction_id: str, *, account_id: str | None = None) -> Prediction | None:
        """With ``account_id``: only that account's predictions that are not soft-deleted."""
        ...

    def update(self, prediction: Prediction) -> None: ...


class JobRepository(Protocol):
    def add(self, job: Job) -> None: ...

    def get(self, job_id: str) -> Job | None: ...

    def for_subject(self, subject_id: str) -> Job | None: ...

    def next_claimable(self, now: datetime, subject_id: str | None = None) -> Job | None:
        """The next queued job, or a running one whose lease expired; locked for this claim.
        With ``subject_id``: only that subject's job."""
        ...

    def stranded(self, now: datetime, *, queued_before: datetime | None) -> list[Job]:
        """Jobs nobody is working on: running ones whose lease expired, and (unless
        ``queued_before`` is None) queued ones last handed to the queue before it."""
        ...

    def save(self, job: Job, *, expected_token: str | None) -> bool:
        """Write ``job`` only while its stored lease token equals ``expected_token``."""
        ...

    def count_active(self) -> int: ...


class WebhookRepository(Protocol):
    def add(self, delivery: WebhookDelivery) -> None: ...

    def due(self, now: datetime, *, limit: int) -> list[WebhookDelivery]:
        """Pending deliveries whose next attempt is due, locked for this sender."""
        ...

    def update(self, delivery: WebhookDelivery) -> None: ...

    def list_for_account(self, account_id: str) -> list[WebhookDelivery]: ...

    def get_secret(self, account_id: str) -> str | None: ...

    def set_secret(self, account_id: str, secret: str) -> None: ...


DUPLICATE_TASK = "duplicate_task"
"""``Conflict.code`` when ``TaskReceiptRepository.add`` finds the task id already stored."""


class TaskReceiptRepository(Protocol):
    """What a client-chosen task id produced (Runware ``taskUUID``), per account and scope."""

    def get(self, account_id: str, scope: str, task_id: str) -> tuple[str, dict[str, Any]] | None:
        """The stored request fingerprint and result, or None."""
        ...

    def delete_before(self, scope_prefix: str, *, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` receipts whose scope starts with ``scope_prefix``, stored
        before ``before``; returns how many."""
        ...

    def add(
        self,
        account_id: str,
        scope: str,
        task_id: str,
        *,
        fingerprint: str,
        result: dict[str, Any],
        at: datetime,
    ) -> None:
        """Store a receipt; raises ``Conflict(code=DUPLICATE_TASK)`` when one with the same
        account, scope and task id exists (also one committed concurrently)."""
        ...


class TrainingPairRepository(Protocol):
    def replace(self, model_id: str, pairs: list[TrainingPair]) -> None:
        """Set the model's pairs, in order, replacing any it had."""
        ...

    def list(self, model_id: str) -> list[TrainingPair]: ...


class UnitOfWork(Protocol):
    """One transaction over all repositories. Leaving without ``commit()`` rolls back."""

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def models(self) -> ModelRepository: ...

    @property
    def images(self) -> ImageRepository: ...

    @property
    def trainings(self) -> TrainingRepository: ...

    @property
    def predictions(self) -> PredictionRepository: ...

    @property
    def jobs(self) -> JobRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def receipts(self) -> TaskReceiptRepository: ...

    @property
    def pairs(self) -> TrainingPairRepository: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = False) -> AbstractContextManager[UnitOfWork]:
        """Open a transaction. ``write=True`` takes the write lock up front where the database
        needs it (SQLite ``BEGIN IMMEDIATE``), so writers wait instead of failing."""
        ...

    def check(self) -> None:
        """Raise ``Unavailable`` when the database cannot be reached."""
        ...


class Trainer(Protocol):
    """Trains a LoRA on a base model (diffusers + peft in the real adapter)."""

    def train(
        self,
        spec: TrainingSpec,
        *,
        workdir: Path,
        report: Callable[[TrainingProgress], None],
        should_stop: Callable[[], bool],
    ) -> Path:
        """Train and return the path of the LoRA ``.safetensors`` (inside ``workdir``).

        Checkpoints go to ``workdir`` every ``hyper.checkpoint_every`` steps; when ``workdir``
        already holds a checkpoint of the same spec, training resumes from it. ``report`` is
        called after every step; when ``should_stop()`` turns true the trainer raises
        ``TrainingStopped`` within one step.
        """
        ...


class Generator(Protocol):
    """Generates images, keeping base pipelines resident and swapping LoRA adapters."""

    def generate(self, spec: GenerationSpec) -> list[bytes]:
        """Encoded images (``spec.output_format``), ``spec.num_images`` of them; the same spec
        and seed give the same bytes."""
        ...


class BaseModelCatalog(Protocol):
    """The base models this installation can train on and generate with."""

    @property
    def default(self) -> str:
        """Name of the base model used when a model names none."""
        ...

    def list(self) -> list[BaseModel]: ...

    def get(self, name: str) -> BaseModel:
        """Raise ``KeyError`` for an unknown name."""
        ...


class JobQueue(Protocol):
    """Hands new jobs to workers. The database stays the source of truth for job state: a
    queue only wakes workers (inline) or carries the job id to them (Celery)."""

    def submit(self, subject_id: str) -> None:
        """Called after the transaction that created the job committed."""
        ...

    def wait(self, timeout: float) -> None:
        """Block a worker until work may be available or ``timeout`` seconds passed."""
        ...

    def backlog(self) -> int:
        """Messages waiting in the queue for a worker (0 for a queue that carries none)."""
        ...


class WebhookSender(Protocol):
    def post_json(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST with SSRF checks; return the status code; raise ``FetchFailed`` when blocked,
        refused or timed out."""
        ...


IdFactory = Callable[[], str]


class Captioner(Protocol):
    """Describes an image in words: an image-to-text model (BLIP-style) in the real adapter."""

    def caption(self, image: bytes) -> str:
        """A short caption of the encoded image; the same bytes give the same text.

        ``image`` is one of the core's own derived variants (already decoded, checked and
        re-encoded), never raw client bytes.
        """
        ...
