"""Persistence ports: a repository per aggregate, and the unit of work that holds them."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Literal, Protocol

from loraforge.domain.dataset import ImageQuality
from loraforge.domain.entities import (
    Account,
    ApiKey,
    Image,
    ImageKind,
    Model,
    TrainingPair,
)
from loraforge.domain.samples import Checkpoint, Sample
from loraforge.domain.work import CaptionRun, Job, JobKind, Prediction, Training, WebhookDelivery
from loraforge.ports.provenance import SigningKeyRepository, TrainingReceiptRepository


class AccountRepository(Protocol):
    def add(self, account: Account) -> None: ...

    def get(self, account_id: str) -> Account | None: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey, *, key_hash: str) -> None: ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def find_by_prefix(self, prefix: str) -> list[tuple[ApiKey, str]]:
        """Keys whose public prefix matches, each with its stored hash."""
        ...

    def list(self) -> list[ApiKey]:
        """Every account's keys, oldest first."""
        ...

    def update(self, key: ApiKey) -> None:
        """Write the key's name, revocation and last use; its account, prefix, hash and
        creation time never change."""
        ...


class ModelRepository(Protocol):
    def add(self, model: Model) -> None: ...

    def get(self, account_id: str, model_id: str, *, lock: bool = False) -> Model | None:
        """A live (not deleted) model of the account; ``lock`` serialises writers on it."""
        ...

    def list(self, account_id: str, *, offset: int, limit: int) -> tuple[list[Model], int]:
        """Live models, newest first, and their total count."""
        ...

    def update(self, model: Model) -> None:
        """Write every field but the owner (a model never changes account)."""
        ...


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

    def update(self, image: Image) -> None:
        """Write every field of ``image``; raises ``NotFound`` when its row is gone."""
        ...

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

    def with_sha256(self, account_id: str, sha256: str) -> list[Image]:
        """Every image of the account holding these bytes, of any model and kind."""
        ...

    def first_with_sha256(self, model_id: str, kind: ImageKind, sha256: str) -> Image | None:
        """The model's first image of ``kind`` with these bytes (upload order), if any."""
        ...

    def save_quality(self, image_id: str, display_key: str, quality: ImageQuality) -> bool:
        """Store what was measured of the image's display variant ``display_key``, replacing
        earlier measures; False, storing nothing, when the image is gone or its display variant
        is another by now (its bytes were replaced). Deleting the image deletes them."""
        ...

    def qualities(self, image_ids: Iterable[str]) -> dict[str, ImageQuality]:
        """The measures stored for those images, by image id: only those taken on the image's
        current display variant."""
        ...


class TrainingRepository(Protocol):
    def add(self, training: Training, *, pinned_blobs: set[str]) -> None:
        """Store a training and pin the blobs its frozen manifest uses."""
        ...

    def get(
        self, training_id: str, *, account_id: str | None = None, lock: RowLock | None = None
    ) -> Training | None:
        """With ``account_id``: only that account's trainings that are not soft-deleted.
        ``lock`` holds the row until the transaction ends: ``share`` against writers (a
        prediction naming it, against an erase), ``update`` against writers and sharers too
        (an erase, a training's end). Take several in id order."""
        ...

    def list_for_model(self, model_id: str) -> list[Training]:
        """Live trainings, newest first."""
        ...

    def list_for_account(self, account_id: str) -> list[Training]:
        """Every training of the account, soft-deleted ones too, newest first."""
        ...

    def unpin(self, training_id: str) -> set[str]:
        """Forget the blobs the training's manifest pinned; returns their keys."""
        ...

    def with_weights(self, training_ids: Collection[str]) -> set[str]:
        """Those of ``training_ids`` that name a training whose LoRA weights are stored (not
        erased, soft-deleted or not): one query, however many ids."""
        ...

    def update(self, training: Training) -> None: ...


class PredictionRepository(Protocol):
    def add(self, prediction: Prediction) -> None: ...

    def get(self, prediction_id: str, *, account_id: str | None = None) -> Prediction | None:
        """With ``account_id``: only that account's predictions that are not soft-deleted."""
        ...

    def update(self, prediction: Prediction) -> None: ...

    def using_trainings(self, account_id: str, training_ids: set[str]) -> list[Prediction]:
        """The account's predictions (soft-deleted ones too) whose scale configs name any of
        ``training_ids``, newest first."""
        ...

    def pinned(self, prediction_id: str) -> set[str]:
        """The blobs the prediction's input pictures still hold: all of them while it is
        queued or running, unless an erasure took them (``unpin_blobs``)."""
        ...

    def unpin(self, prediction_id: str) -> set[str]:
        """Forget the prediction's holds on its input pictures' blobs (it ended); returns
        the keys it held."""
        ...

    def unpin_blobs(self, keys: Iterable[str]) -> set[str]:
        """Forget every prediction's hold on these blobs (their picture is erased); returns
        the ids of the predictions that held one."""
        ...


class CaptionRunRepository(Protocol):
    def add(self, run: CaptionRun) -> None: ...

    def get(self, run_id: str, *, account_id: str | None = None) -> CaptionRun | None:
        """With ``account_id``: only that account's runs."""
        ...

    def update(self, run: CaptionRun) -> None:
        """Write every field but the owner, model and images (which never change)."""
        ...


class JobRepository(Protocol):
    def add(self, job: Job) -> None: ...

    def for_subject(self, subject_id: str) -> Job | None: ...

    def next_claimable(
        self,
        now: datetime,
        subject_id: str | None = None,
        *,
        kinds: Collection[JobKind] | None = None,
    ) -> Job | None:
        """The next queued job, or a running one whose lease expired; locked for this claim.
        With ``subject_id``: only that subject's job; with ``kinds``: only jobs of those."""
        ...

    def stranded(self, now: datetime, *, queued_before: datetime | None) -> list[Job]:
        """Jobs nobody is working on: running ones whose lease expired, and (unless
        ``queued_before`` is None) queued ones last handed to the queue before it."""
        ...

    def save(self, job: Job, *, expected_token: str | None) -> bool:
        """Write ``job`` only while its stored lease token equals ``expected_token``."""
        ...


class WebhookRepository(Protocol):
    def add(self, delivery: WebhookDelivery) -> None: ...

    def due(self, now: datetime, *, limit: int) -> list[WebhookDelivery]:
        """Pending deliveries whose next attempt is due, locked for this sender: of a run's
        deliveries only the first still pending (neither delivered nor failed), so a run's
        deliveries are attempted in ``sequence`` order, whichever process sends them."""
        ...

    def last_sequence(self, run_id: str) -> int:
        """The highest ``sequence`` of the run's deliveries; 0 when it has none."""
        ...

    def update(self, delivery: WebhookDelivery) -> None: ...

    def list_for_account(self, account_id: str) -> list[WebhookDelivery]: ...

    def get_secret(self, account_id: str) -> str | None: ...

    def set_secret(self, account_id: str, secret: str) -> None: ...


RowLock = Literal["share", "update"]
"""Row locks a read may take (PostgreSQL ``FOR SHARE`` / ``FOR UPDATE``; on SQLite a write
transaction already excludes every other writer)."""

TASK_CONFLICT = "task_conflict"
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
        """Store a receipt; raises ``Conflict(code=TASK_CONFLICT)`` when one with the same
        account, scope and task id exists (also one committed concurrently)."""
        ...


class TrainingPairRepository(Protocol):
    def replace(self, model_id: str, pairs: list[TrainingPair]) -> None:
        """Set the model's pairs, in order, replacing any it had."""
        ...

    def list(self, model_id: str) -> list[TrainingPair]: ...


class TrainingOutputRepository(Protocol):
    """What a training made while it trained: samples, checkpoints, its sample sheet."""

    def add_sample(self, sample: Sample) -> None: ...

    def samples(self, training_id: str) -> list[Sample]:
        """By step, then prompt position."""
        ...

    def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    def checkpoints(self, training_id: str) -> list[Checkpoint]:
        """By step."""
        ...

    def set_sheet(self, training_id: str, image_id: str) -> None: ...

    def sheet(self, training_id: str) -> str | None:
        """The sample sheet's image id, None until there is one."""
        ...

    def remove(self, training_ids: Collection[str]) -> None:
        """Forget the samples, checkpoints and sheets of these trainings (not the image
        rows: the caller deletes those)."""
        ...


class BlobLockRepository(Protocol):
    """Locks on blob keys, held until the transaction ends, that make "is this blob still
    referenced?" and "remove it" one step against writers that reuse the same bytes.

    Writers that commit rows referencing blobs ``lock`` the keys (waiting) and check the blobs
    exist before committing; removals ``try_lock`` (never waiting) and only remove keys they
    hold and that no row references. Where the database has a single writer lock (SQLite's
    ``BEGIN IMMEDIATE``), a write transaction already holds every key.
    """

    def lock(self, keys: Iterable[str]) -> None:
        """Wait for and hold each key's lock until the (write) transaction ends."""
        ...

    def try_lock(self, keys: Iterable[str]) -> set[str]:
        """Take the locks that are free now; return the keys this transaction holds."""
        ...


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
    def caption_runs(self) -> CaptionRunRepository: ...

    @property
    def jobs(self) -> JobRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def receipts(self) -> TaskReceiptRepository: ...

    @property
    def pairs(self) -> TrainingPairRepository: ...

    @property
    def blob_locks(self) -> BlobLockRepository: ...

    @property
    def signing_keys(self) -> SigningKeyRepository: ...

    @property
    def training_receipts(self) -> TrainingReceiptRepository: ...

    @property
    def training_outputs(self) -> TrainingOutputRepository: ...

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
