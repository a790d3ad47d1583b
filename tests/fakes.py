"""In-memory fakes of the ports, for unit tests of the services.

They keep the semantics the services rely on: a unit of work sees a snapshot and publishes it
only on ``commit()``; writers are serialised (like SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's row
lock); repositories hand out copies, so a change without ``update()`` is lost as it would be in
SQL; identical blob bytes are stored once. Hooks and switches inject faults.
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import hashlib
import io
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from loraforge.domain.dataset import ImageQuality
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
from loraforge.domain.errors import (
    Conflict,
    FetchFailed,
    ImageRejected,
    InsufficientStorage,
    NotFound,
    Unavailable,
    UnsupportedFormat,
)
from loraforge.domain.ml import BaseModel, ModelFamily
from loraforge.domain.provenance import Receipt, SigningKey
from loraforge.domain.samples import Checkpoint, Sample
from loraforge.domain.work import (
    CaptionRun,
    Job,
    JobKind,
    JobState,
    Prediction,
    Training,
    WebhookDelivery,
)
from loraforge.ports import TASK_CONFLICT, Clock, JobWorker
from loraforge.ports.repositories import RowLock

EPOCH = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime = EPOCH) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class FastClock:
    """Wall time sped up ``speed_up`` times from ``EPOCH``: waits of clock minutes (backoffs,
    throttles) pass in real milliseconds, in tests with threads that cannot step a clock."""

    def __init__(self, speed_up: float) -> None:
        self._speed_up = speed_up
        self._start = time.monotonic()

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=(time.monotonic() - self._start) * self._speed_up)


class FakeIds:
    """Predictable ids: ``id-0001``, ``id-0002``…"""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._n = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self._n += 1
            return f"{self._prefix}-{self._n:04d}"


# --- blobs ------------------------------------------------------------------------------


class InMemoryBlobStore:
    """Content-addressed bytes in a dict; times come from ``clock`` so the sweep is testable.

    ``capacity`` (bytes) makes a write that would exceed it fail like a full disk; ``down``
    makes every call fail like an unreachable store.
    """

    def __init__(self, clock: Clock | None = None, *, capacity: int | None = None) -> None:
        self.clock: Clock = clock or FakeClock()
        self.capacity = capacity
        self.down = False
        self.blobs: dict[str, bytes] = {}
        self.written_at: dict[str, datetime] = {}
        self.temp_files: dict[str, datetime] = {}
        self.writes: list[str] = []  # every key put, in order (created or not)
        self._lock = threading.Lock()

    def put_file(self, source: BinaryIO) -> StoredBlob:
        return self.put_bytes(source.read())

    def put_bytes(self, data: bytes) -> StoredBlob:
        self._check_up()
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            created = key not in self.blobs
            if created and self.capacity is not None and self.used + len(data) > self.capacity:
                raise InsufficientStorage("No space left to store the image.")
            self.blobs[key] = data
            self.written_at[key] = self.clock.now()
            self.writes.append(key)
        return StoredBlob(key=key, size=len(data), created=created)

    @property
    def used(self) -> int:
        return sum(len(b) for b in self.blobs.values())

    def open(self, key: str) -> BinaryIO:
        self._check_up()
        try:
            return io.BytesIO(self.blobs[key])
        except KeyError as exc:
            raise NotFound("No such blob.") from exc

    def size(self, key: str) -> int:
        self._check_up()
        try:
            return len(self.blobs[key])
        except KeyError as exc:
            raise NotFound("No such blob.") from exc

    def delete(self, key: str) -> None:
        self._check_up()
        with self._lock:
            self.blobs.pop(key, None)
            self.written_at.pop(key, None)

    def iter_keys(self, *, older_than: datetime) -> Iterator[str]:
        self._check_up()
        with self._lock:  # a snapshot: callers delete while iterating
            keys = [k for k, t in self.written_at.items() if t < older_than]
        yield from keys

    def check(self) -> None:
        self._check_up()

    def remove_stale_temp_files(self, *, older_than: datetime) -> int:
        self._check_up()
        with self._lock:
            stale = [name for name, t in self.temp_files.items() if t < older_than]
            for name in stale:
                del self.temp_files[name]
        return len(stale)

    def add_temp_file(self, name: str) -> None:
        """A partial write, as a crash mid-``put`` would leave it."""
        self.temp_files[name] = self.clock.now()

    def _check_up(self) -> None:
        if self.down:
            raise Unavailable("The blob store is not available.")


# --- repositories and the unit of work --------------------------------------------------


@dataclass
class FakeState:
    """Everything the database holds. Entities are copied in and out."""

    accounts: dict[str, Account] = field(default_factory=dict)
    api_keys: dict[str, tuple[ApiKey, str]] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)
    trainings: dict[str, Training] = field(default_factory=dict)
    training_blobs: dict[str, set[str]] = field(default_factory=dict)
    predictions: dict[str, Prediction] = field(default_factory=dict)
    prediction_blobs: dict[str, set[str]] = field(default_factory=dict)  # prediction id -> keys
    caption_runs: dict[str, CaptionRun] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    webhooks: dict[str, WebhookDelivery] = field(default_factory=dict)
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    receipts: dict[tuple[str, str, str], tuple[str, dict[str, Any], datetime]] = field(
        default_factory=dict
    )
    pairs: dict[str, builtins.list[TrainingPair]] = field(default_factory=dict)
    samples: dict[str, Sample] = field(default_factory=dict)  # by image id
    checkpoints: dict[tuple[str, int], Checkpoint] = field(default_factory=dict)
    sheets: dict[str, str] = field(default_factory=dict)  # training id -> image id
    # image id -> (the display key measured, the measures)
    image_quality: dict[str, tuple[str, ImageQuality]] = field(default_factory=dict)
    signing_key: SigningKey | None = None
    training_receipts: dict[str, Receipt] = field(default_factory=dict)

    def copy(self) -> FakeState:
        return copy.deepcopy(self)


class _Repository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _state(self) -> FakeState:
        return self._uow.state

    def _changed(self) -> None:
        self._uow.dirty = True


class FakeAccountRepository(_Repository):
    def add(self, account: Account) -> None:
        assert account.id not in self._state.accounts, "duplicate primary key"
        self._state.accounts[account.id] = copy.copy(account)
        self._changed()

    def get(self, account_id: str) -> Account | None:
        account = self._state.accounts.get(account_id)
        return copy.copy(account) if account else None


class FakeApiKeyRepository(_Repository):
    def add(self, key: ApiKey, *, key_hash: str) -> None:
        assert key.id not in self._state.api_keys, "duplicate primary key"
        assert key.account_id in self._state.accounts, "foreign key: no such account"
        assert all(h != key_hash for _, h in self._state.api_keys.values()), "unique key_hash"
        self._state.api_keys[key.id] = (copy.copy(key), key_hash)
        self._changed()

    def get(self, key_id: str) -> ApiKey | None:
        entry = self._state.api_keys.get(key_id)
        return copy.copy(entry[0]) if entry else None

    def find_by_prefix(self, prefix: str) -> builtins.list[tuple[ApiKey, str]]:
        return [(copy.copy(k), h) for k, h in self._state.api_keys.values() if k.prefix == prefix]

    def list(self) -> builtins.list[ApiKey]:
        keys = [copy.copy(k) for k, _ in self._state.api_keys.values()]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    def update(self, key: ApiKey) -> None:
        stored, key_hash = self._state.api_keys[key.id]
        # Like the SQL row: a key's account, prefix and creation time never change.
        changed = dataclasses.replace(
            stored, name=key.name, revoked_at=key.revoked_at, last_used_at=key.last_used_at
        )
        self._state.api_keys[key.id] = (changed, key_hash)
        self._changed()


class FakeModelRepository(_Repository):
    def add(self, model: Model) -> None:
        assert model.id not in self._state.models, "duplicate primary key"
        assert model.account_id in self._state.accounts, "foreign key: no such account"
        self._state.models[model.id] = copy.deepcopy(model)
        self._changed()

    def get(self, account_id: str, model_id: str, *, lock: bool = False) -> Model | None:
        if lock:
            # Writers are already serialised by the factory; a lock outside a write
            # transaction would be a bug in the caller (PostgreSQL would not hold it).
            assert self._uow.write, "lock=True outside a write transaction"
            self._uow.factory.locked.append(model_id)
        model = self._state.models.get(model_id)
        if model is None or model.account_id != account_id or model.deleted_at is not None:
            return None
        return copy.deepcopy(model)  # its attributes too: a change needs ``update()``

    def list(self, account_id: str, *, offset: int, limit: int) -> tuple[builtins.list[Model], int]:
        live = [
            m
            for m in self._state.models.values()
            if m.account_id == account_id and m.deleted_at is None
        ]
        live.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        return copy.deepcopy(live[offset : offset + limit]), len(live)

    def update(self, model: Model) -> None:
        stored = self._state.models.get(model.id)
        assert stored is not None, "update of a missing row"
        # Like the SQL row: the owner never changes.
        owned = dataclasses.replace(model, account_id=stored.account_id)
        self._state.models[model.id] = copy.deepcopy(owned)
        self._changed()


class FakeImageRepository(_Repository):
    def add(self, image: Image) -> None:
        assert image.id not in self._state.images, "duplicate primary key"
        assert image.account_id in self._state.accounts, "foreign key: no such account"
        assert image.model_id is None or image.model_id in self._state.models, "foreign key"
        self._state.images[image.id] = copy.copy(image)
        self._changed()

    def _visible(self, image: Image) -> bool:
        if image.model_id is None:
            return True
        model = self._state.models.get(image.model_id)
        return model is not None and model.deleted_at is None

    def get(self, account_id: str, image_id: str) -> Image | None:
        image = self._state.images.get(image_id)
        if image is None or image.account_id != account_id or not self._visible(image):
            return None
        return copy.copy(image)

    def get_unscoped(self, image_id: str) -> Image | None:
        image = self._state.images.get(image_id)
        return copy.copy(image) if image is not None and self._visible(image) else None

    def list_for_model(
        self, model_id: str, *, kinds: Iterable[ImageKind], offset: int, limit: int
    ) -> tuple[builtins.list[Image], int]:
        wanted = set(kinds)
        found = [
            i
            for i in self._state.images.values()
            if (i.model_id == model_id and i.kind in wanted)
            or (ImageKind.OUTPUT in wanted and self._mixed_output_of(model_id, i))
        ]
        found.sort(key=lambda i: (i.created_at, i.id), reverse=True)
        return [copy.copy(i) for i in found[offset : offset + limit]], len(found)

    def _mixed_output_of(self, model_id: str, image: Image) -> bool:
        """An output of a prediction that mixed ``model_id`` after its first (owning) model."""
        prediction = self._state.predictions.get(image.prediction_id or "")
        return (
            image.kind is ImageKind.OUTPUT
            and prediction is not None
            and model_id in prediction.mixed_model_ids
            and self._visible(image)
        )

    def count_for_model(self, model_id: str, kind: ImageKind) -> int:
        return sum(
            1 for i in self._state.images.values() if i.model_id == model_id and i.kind == kind
        )

    def update(self, image: Image) -> None:
        if image.id not in self._state.images:
            raise NotFound(f"No image {image.id}.")
        self._state.images[image.id] = copy.copy(image)
        self._changed()

    def delete(self, image_id: str) -> None:
        if self._state.images.pop(image_id, None) is not None:
            self._state.image_quality.pop(image_id, None)  # ON DELETE CASCADE
            self._changed()

    def referenced_blob_keys(self, keys: Iterable[str]) -> set[str]:
        used: set[str] = set()
        for image in self._state.images.values():
            used |= image.blob_keys()
        for pinned in self._state.training_blobs.values():
            used |= pinned
        used |= {t.artifact_key for t in self._state.trainings.values() if t.artifact_key}
        used |= {c.blob_key for c in self._state.checkpoints.values()}
        for held in self._state.prediction_blobs.values():
            used |= held
        return used & set(keys)

    def touch(self, image_id: str, at: datetime) -> None:
        image = self._state.images.get(image_id)
        if image is not None and image.last_used_at < at:
            image.last_used_at = at
            self._changed()

    def list_unused(self, origin: str, *, before: datetime, limit: int) -> builtins.list[Image]:
        unused = [
            i for i in self._state.images.values() if i.origin == origin and i.last_used_at < before
        ]
        unused.sort(key=lambda i: (i.last_used_at, i.id))
        return [copy.copy(i) for i in unused[:limit]]

    def delete_unused(self, image_id: str, *, before: datetime) -> bool:
        image = self._state.images.get(image_id)
        if image is None or image.last_used_at >= before:
            return False
        del self._state.images[image_id]
        self._state.image_quality.pop(image_id, None)  # ON DELETE CASCADE
        self._changed()
        return True

    def with_sha256(self, account_id: str, sha256: str) -> builtins.list[Image]:
        same = [
            i
            for i in self._state.images.values()
            if i.account_id == account_id and i.sha256 == sha256
        ]
        return copy.deepcopy(sorted(same, key=lambda i: (i.created_at, i.id)))

    def first_with_sha256(self, model_id: str, kind: ImageKind, sha256: str) -> Image | None:
        same = [
            i
            for i in self._state.images.values()
            if i.model_id == model_id and i.kind == kind and i.sha256 == sha256
        ]
        return copy.copy(min(same, key=lambda i: (i.created_at, i.id))) if same else None

    def save_quality(self, image_id: str, display_key: str, quality: ImageQuality) -> bool:
        image = self._state.images.get(image_id)
        if image is None or image.display_key != display_key:
            return False
        self._state.image_quality[image_id] = (display_key, quality)
        self._changed()
        return True

    def qualities(self, image_ids: Iterable[str]) -> dict[str, ImageQuality]:
        found = {}
        for image_id in set(image_ids):
            image = self._state.images.get(image_id)
            stored = self._state.image_quality.get(image_id)
            if image is not None and stored is not None and stored[0] == image.display_key:
                found[image_id] = stored[1]
        return found


class FakeTrainingRepository(_Repository):
    def add(self, training: Training, *, pinned_blobs: set[str]) -> None:
        assert training.id not in self._state.trainings, "duplicate primary key"
        assert training.model_id in self._state.models, "foreign key: no such model"
        self._state.trainings[training.id] = copy.deepcopy(training)
        self._state.training_blobs[training.id] = set(pinned_blobs)
        self._changed()

    def get(
        self, training_id: str, *, account_id: str | None = None, lock: RowLock | None = None
    ) -> Training | None:
        # Write transactions hold the one write lock already (like SQLite).
        training = self._state.trainings.get(training_id)
        if training is None:
            return None
        if account_id is not None and (
            training.account_id != account_id or training.deleted_at is not None
        ):
            return None
        return copy.deepcopy(training)

    def list_for_model(self, model_id: str) -> builtins.list[Training]:
        live = [
            t
            for t in self._state.trainings.values()
            if t.model_id == model_id and t.deleted_at is None
        ]
        live.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return copy.deepcopy(live)

    def list_for_account(self, account_id: str) -> builtins.list[Training]:
        owned = [t for t in self._state.trainings.values() if t.account_id == account_id]
        owned.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return copy.deepcopy(owned)

    def unpin(self, training_id: str) -> set[str]:
        self._changed()
        return self._state.training_blobs.pop(training_id, set())

    def with_weights(self, training_ids: Collection[str]) -> set[str]:
        trainings = self._state.trainings
        return {
            i
            for i in training_ids
            if i in trainings
            and trainings[i].artifact_key is not None
            and trainings[i].erased_at is None
        }

    def update(self, training: Training) -> None:
        if training.id in self._state.trainings:  # like UPDATE … WHERE id = …
            self._state.trainings[training.id] = copy.deepcopy(training)
            self._changed()


class FakePredictionRepository(_Repository):
    def add(self, prediction: Prediction) -> None:
        assert prediction.id not in self._state.predictions, "duplicate primary key"
        self._state.predictions[prediction.id] = copy.deepcopy(prediction)
        self._state.prediction_blobs[prediction.id] = set(prediction.input_blob_keys)
        self._changed()

    def get(self, prediction_id: str, *, account_id: str | None = None) -> Prediction | None:
        prediction = self._state.predictions.get(prediction_id)
        if prediction is None:
            return None
        if account_id is not None and (
            prediction.account_id != account_id or prediction.deleted_at is not None
        ):
            return None
        return copy.deepcopy(prediction)

    def update(self, prediction: Prediction) -> None:
        if prediction.id in self._state.predictions:
            self._state.predictions[prediction.id] = copy.deepcopy(prediction)
            self._changed()

    def using_trainings(self, account_id: str, training_ids: set[str]) -> builtins.list[Prediction]:
        found = [
            p
            for p in self._state.predictions.values()
            if p.account_id == account_id
            and any(c.training_id in training_ids for c in p.scale_configs)
        ]
        found.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        return copy.deepcopy(found)

    def pinned(self, prediction_id: str) -> set[str]:
        return set(self._state.prediction_blobs.get(prediction_id, set()))

    def unpin(self, prediction_id: str) -> set[str]:
        self._changed()
        return self._state.prediction_blobs.pop(prediction_id, set())

    def unpin_blobs(self, keys: Iterable[str]) -> set[str]:
        wanted = set(keys)
        held = {p for p, pinned in self._state.prediction_blobs.items() if pinned & wanted}
        for prediction_id in held:
            self._state.prediction_blobs[prediction_id] -= wanted
        self._changed()
        return held


class FakeSigningKeyRepository(_Repository):
    def get(self) -> SigningKey | None:
        return self._state.signing_key

    def add_if_absent(self, key: SigningKey) -> None:
        if self._state.signing_key is None:
            self._state.signing_key = key
            self._changed()


class FakeTrainingReceiptRepository(_Repository):
    def add(self, receipt: Receipt) -> None:
        assert receipt.training_id not in self._state.training_receipts, "duplicate primary key"
        self._state.training_receipts[receipt.training_id] = copy.deepcopy(receipt)
        self._changed()

    def get(self, training_id: str) -> Receipt | None:
        return copy.deepcopy(self._state.training_receipts.get(training_id))


class FakeCaptionRunRepository(_Repository):
    def add(self, run: CaptionRun) -> None:
        assert run.id not in self._state.caption_runs, "duplicate primary key"
        assert run.account_id in self._state.accounts, "foreign key: no such account"
        assert run.model_id in self._state.models, "foreign key: no such model"
        self._state.caption_runs[run.id] = copy.deepcopy(run)
        self._changed()

    def get(self, run_id: str, *, account_id: str | None = None) -> CaptionRun | None:
        run = self._state.caption_runs.get(run_id)
        if run is None or (account_id is not None and run.account_id != account_id):
            return None
        return copy.deepcopy(run)

    def update(self, run: CaptionRun) -> None:
        stored = self._state.caption_runs.get(run.id)
        if stored is not None:  # like UPDATE … WHERE id = …
            # Like the SQL row: the owner, model and images never change.
            self._state.caption_runs[run.id] = copy.deepcopy(
                dataclasses.replace(
                    run,
                    account_id=stored.account_id,
                    model_id=stored.model_id,
                    overwrite=stored.overwrite,
                    image_ids=stored.image_ids,
                    created_at=stored.created_at,
                )
            )
            self._changed()


class FakeJobRepository(_Repository):
    def add(self, job: Job) -> None:
        assert job.id not in self._state.jobs, "duplicate primary key"
        self._state.jobs[job.id] = copy.copy(job)
        self._changed()

    def for_subject(self, subject_id: str) -> Job | None:
        for job in self._state.jobs.values():
            if job.subject_id == subject_id:
                return copy.copy(job)
        return None

    def next_claimable(
        self,
        now: datetime,
        subject_id: str | None = None,
        *,
        kinds: Collection[JobKind] | None = None,
    ) -> Job | None:
        def claimable(job: Job) -> bool:
            if subject_id is not None and job.subject_id != subject_id:
                return False
            if kinds is not None and job.kind not in kinds:
                return False
            queued_or_lost = job.state is JobState.QUEUED or _lease_expired(job, now)
            return queued_or_lost and job.available_at <= now

        ready = sorted(
            (j for j in self._state.jobs.values() if claimable(j)),
            key=lambda j: (j.available_at, j.created_at),
        )
        return copy.copy(ready[0]) if ready else None

    def stranded(self, now: datetime, *, queued_before: datetime | None) -> list[Job]:
        def stranded(job: Job) -> bool:
            waiting = job.state is JobState.QUEUED and (
                queued_before is not None and job.available_at < queued_before
            )
            return waiting or _lease_expired(job, now)

        found = [j for j in self._state.jobs.values() if stranded(j)]
        return [copy.copy(j) for j in sorted(found, key=lambda j: (j.available_at, j.created_at))]

    def save(self, job: Job, *, expected_token: str | None) -> bool:
        stored = self._state.jobs.get(job.id)
        if stored is None or stored.lease_token != expected_token:
            return False  # fenced: a newer claim owns the job
        self._state.jobs[job.id] = copy.copy(job)
        self._changed()
        return True


class FakeWebhookRepository(_Repository):
    def add(self, delivery: WebhookDelivery) -> None:
        assert delivery.id not in self._state.webhooks, "duplicate primary key"
        numbered = delivery.run_id is not None and delivery.sequence is not None
        assert not numbered or all(
            (d.run_id, d.sequence) != (delivery.run_id, delivery.sequence)
            for d in self._state.webhooks.values()
        ), "duplicate run sequence"
        self._state.webhooks[delivery.id] = copy.copy(delivery)
        self._changed()

    def due(self, now: datetime, *, limit: int) -> builtins.list[WebhookDelivery]:
        pending = [
            d
            for d in self._state.webhooks.values()
            if d.delivered_at is None and d.failed_at is None
        ]
        first_of_run: dict[str, int] = {}
        for d in pending:
            if d.run_id is not None and d.sequence is not None:
                first_of_run[d.run_id] = min(first_of_run.get(d.run_id, d.sequence), d.sequence)
        ready = [
            d
            for d in pending
            if d.next_attempt_at <= now
            and (d.run_id is None or d.sequence is None or first_of_run[d.run_id] == d.sequence)
        ]
        ready.sort(key=lambda d: (d.next_attempt_at, d.sequence or 0))
        return [copy.copy(d) for d in ready[:limit]]

    def last_sequence(self, run_id: str) -> int:
        numbers = [d.sequence or 0 for d in self._state.webhooks.values() if d.run_id == run_id]
        return max(numbers, default=0)

    def update(self, delivery: WebhookDelivery) -> None:
        if delivery.id in self._state.webhooks:
            self._state.webhooks[delivery.id] = copy.copy(delivery)
            self._changed()

    def list_for_account(self, account_id: str) -> builtins.list[WebhookDelivery]:
        found = [d for d in self._state.webhooks.values() if d.account_id == account_id]
        return [copy.copy(d) for d in sorted(found, key=lambda d: d.created_at)]

    def get_secret(self, account_id: str) -> str | None:
        return self._state.webhook_secrets.get(account_id)

    def set_secret(self, account_id: str, secret: str) -> None:
        if account_id in self._state.accounts:
            self._state.webhook_secrets[account_id] = secret
            self._changed()


class FakeTaskReceiptRepository(_Repository):
    def get(self, account_id: str, scope: str, task_id: str) -> tuple[str, dict[str, Any]] | None:
        receipt = self._state.receipts.get((account_id, scope, task_id))
        return (receipt[0], copy.deepcopy(receipt[1])) if receipt else None

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
        key = (account_id, scope, task_id)
        if key in self._state.receipts:
            raise Conflict("This task id was already used.", code=TASK_CONFLICT)
        self._state.receipts[key] = (fingerprint, copy.deepcopy(result), at)
        self._changed()

    def delete_before(self, scope_prefix: str, *, before: datetime, limit: int) -> int:
        old = [
            key
            for key, (_, _, at) in self._state.receipts.items()
            if key[1].startswith(scope_prefix) and at < before
        ][:limit]
        for key in old:
            del self._state.receipts[key]
        if old:
            self._changed()
        return len(old)


class FakeTrainingPairRepository(_Repository):
    def replace(self, model_id: str, pairs: builtins.list[TrainingPair]) -> None:
        self._state.pairs[model_id] = builtins.list(pairs)
        self._changed()

    def list(self, model_id: str) -> builtins.list[TrainingPair]:
        return builtins.list(self._state.pairs.get(model_id, []))


class FakeTrainingOutputRepository(_Repository):
    def add_sample(self, sample: Sample) -> None:
        self._state.samples[sample.image_id] = sample
        self._changed()

    def samples(self, training_id: str) -> builtins.list[Sample]:
        found = [s for s in self._state.samples.values() if s.training_id == training_id]
        return sorted(found, key=lambda s: (s.step, s.position))

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._state.checkpoints[(checkpoint.training_id, checkpoint.step)] = checkpoint
        self._changed()

    def checkpoints(self, training_id: str) -> builtins.list[Checkpoint]:
        found = [c for c in self._state.checkpoints.values() if c.training_id == training_id]
        return sorted(found, key=lambda c: c.step)

    def set_sheet(self, training_id: str, image_id: str) -> None:
        self._state.sheets[training_id] = image_id
        self._changed()

    def sheet(self, training_id: str) -> str | None:
        return self._state.sheets.get(training_id)

    def remove(self, training_ids: Collection[str]) -> None:
        state = self._state
        state.samples = {
            k: v for k, v in state.samples.items() if v.training_id not in training_ids
        }
        state.checkpoints = {k: v for k, v in state.checkpoints.items() if k[0] not in training_ids}
        state.sheets = {k: v for k, v in state.sheets.items() if k not in training_ids}
        self._changed()


CommitHook = Callable[["FakeUnitOfWork"], None]


class FakeBlobLockRepository:
    """Write transactions of the fake database exclude each other (like SQLite's): a write
    transaction holds every key."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def lock(self, keys: Iterable[str]) -> None:
        assert self._uow.write, "blob keys locked outside a write transaction"

    def try_lock(self, keys: Iterable[str]) -> set[str]:
        assert self._uow.write, "blob keys locked outside a write transaction"
        return set(keys)


class FakeUnitOfWork:
    """Works on a private copy of the state; ``commit()`` publishes it."""

    def __init__(self, factory: FakeUnitOfWorkFactory, state: FakeState, *, write: bool) -> None:
        self.factory = factory
        self.state = state
        self.write = write
        self.dirty = False
        self.committed = False
        self.accounts = FakeAccountRepository(self)
        self.api_keys = FakeApiKeyRepository(self)
        self.models = FakeModelRepository(self)
        self.images = FakeImageRepository(self)
        self.trainings = FakeTrainingRepository(self)
        self.predictions = FakePredictionRepository(self)
        self.caption_runs = FakeCaptionRunRepository(self)
        self.jobs = FakeJobRepository(self)
        self.webhooks = FakeWebhookRepository(self)
        self.receipts = FakeTaskReceiptRepository(self)
        self.pairs = FakeTrainingPairRepository(self)
        self.blob_locks = FakeBlobLockRepository(self)
        self.signing_keys = FakeSigningKeyRepository(self)
        self.training_receipts = FakeTrainingReceiptRepository(self)
        self.training_outputs = FakeTrainingOutputRepository(self)

    def commit(self) -> None:
        assert self.write or not self.dirty, "changes committed outside a write transaction"
        for hook in list(self.factory.before_commit):
            hook(self)  # may raise: the commit then fails and nothing is published
        if self.write:  # a read-only unit of work has nothing to publish
            self.factory.publish(self.state)
        self.state = self.state.copy()
        self.dirty = False
        self.committed = True

    def rollback(self) -> None:
        self.state = self.factory.snapshot()
        self.dirty = False


class FakeUnitOfWorkFactory:
    """Dict-backed database. Write transactions hold one lock from start to end.

    ``before_commit`` hooks run inside ``commit()`` before anything is published; a hook that
    raises makes the commit fail (the fault-injection point). ``down`` makes opening a unit of
    work fail with ``Unavailable``, like an unreachable database.
    """

    def __init__(self, state: FakeState | None = None) -> None:
        self._state = state or FakeState()
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.before_commit: list[CommitHook] = []
        self.down = False
        self.opened: list[bool] = []  # the ``write`` flag of every unit of work opened
        self.locked: list[str] = []  # model ids fetched with ``lock=True``
        self.commits = 0

    @contextmanager
    def __call__(self, *, write: bool = False) -> Iterator[FakeUnitOfWork]:
        if self.down:
            raise Unavailable("The database is not available.")
        with self._write_lock if write else nullcontext():
            self.opened.append(write)
            yield FakeUnitOfWork(self, self.snapshot(), write=write)

    def check(self) -> None:
        if self.down:
            raise Unavailable("The database is not available.")

    def snapshot(self) -> FakeState:
        with self._state_lock:
            return self._state.copy()

    def publish(self, state: FakeState) -> None:
        with self._state_lock:
            self._state = state.copy()
            self.commits += 1

    @property
    def state(self) -> FakeState:
        """The committed state (a copy), for assertions."""
        return self.snapshot()

    def fail_commits(self, error: Exception) -> None:
        """Make every later commit raise ``error``."""

        def hook(_: FakeUnitOfWork) -> None:
            raise error

        self.before_commit.append(hook)

    def fail_image_commits(self, error: Exception) -> None:
        """Make every commit that adds or changes an image row raise ``error``."""

        def hook(uow: FakeUnitOfWork) -> None:
            before = self.snapshot().images
            if uow.state.images.keys() - before.keys() or any(
                before.get(k) != v for k, v in uow.state.images.items()
            ):
                raise error

        self.before_commit.append(hook)


# --- job queue ---------------------------------------------------------------------------


class RecordingJobQueue:
    """Records the subject ids handed to it and, given the fake database, whether each one's
    job was already committed then (a submit before the commit races the worker)."""

    def __init__(self, uow: FakeUnitOfWorkFactory | None = None) -> None:
        self._uow = uow
        self.submitted: list[str] = []
        self.committed_at_submit: list[bool] = []

    def submit(self, subject_id: str) -> None:
        self.submitted.append(subject_id)
        if self._uow is not None:
            jobs = self._uow.state.jobs.values()
            self.committed_at_submit.append(any(j.subject_id == subject_id for j in jobs))

    def wait(self, timeout: float) -> None:
        pass  # tests run the worker step by step

    def backlog(self) -> int:
        return 0

    def run_worker(self, worker: JobWorker, stop: threading.Event) -> None:
        worker.run_forever(stop)


# --- image pipeline and fetcher ---------------------------------------------------------

PROCESSED = ProcessedImage(
    format=ImageFormat.JPEG,
    width=64,
    height=48,
    display=b"fake display variant",
    display_mime="image/webp",
    thumbnail=b"fake thumbnail variant",
    thumbnail_mime="image/webp",
)


class FakeImageProcessor:
    """Returns a fixed ``ProcessedImage`` (or raises ``error``); records what it was given."""

    def __init__(self, result: ProcessedImage = PROCESSED, error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.calls: list[bytes] = []

    def process(self, source: BinaryIO, *, allowed: frozenset[ImageFormat]) -> ProcessedImage:
        self.calls.append(source.read())
        if self.error is not None:
            raise self.error
        if self.result.format not in allowed:
            raise UnsupportedFormat("Not an accepted image format.")
        return self.result

    def decode_cost(self, source: BinaryIO) -> int | None:
        return self.result.width * self.result.height


class FakeInspector:
    """Measures by the bytes: ``measures[data]`` when set, else a good picture whose perceptual
    hash comes from the bytes (different pictures are far apart); ``broken`` bytes cannot be
    read. Records every call."""

    def __init__(self) -> None:
        self.measures: dict[bytes, ImageQuality] = {}
        self.broken: set[bytes] = set()
        self.calls: list[bytes] = []

    def inspect(self, data: bytes) -> ImageQuality:
        self.calls.append(data)
        if data in self.broken:
            raise ImageRejected("The image could not be read for the dataset check.")
        return self.measures.get(data) or good_quality(data)


def good_quality(data: bytes) -> ImageQuality:
    """Sharp, well exposed, no face; the hash is the bytes' (64 bits of their sha256)."""
    phash = hashlib.sha256(data).hexdigest()[:16]
    return ImageQuality(
        phash, sharpness=500.0, luma=120.0, dark_share=0.0, bright_share=0.0, faces=0
    )


class FakeFetcher:
    """Serves fixed bodies by URL; anything else fails with the one uniform error."""

    def __init__(self, bodies: Mapping[str, bytes] | None = None) -> None:
        self.bodies = dict(bodies or {})
        self.requests: list[tuple[str, int]] = []
        self.opened: list[io.BytesIO] = []

    def fetch(self, url: str, *, max_bytes: int) -> BinaryIO:
        self.requests.append((url, max_bytes))
        body = self.bodies.get(url)
        if body is None or len(body) > max_bytes:
            raise FetchFailed("The URL could not be fetched.")
        stream = io.BytesIO(body)
        self.opened.append(stream)
        return stream


class FakeBaseModelCatalog:
    """A fixed list of base models; the first is the default."""

    def __init__(self, names: Iterable[str] = ("tiny", "sd15-local")) -> None:
        self.models = [BaseModel(name=n, family=ModelFamily.SD15, resolution=64) for n in names]

    @property
    def default(self) -> str:
        return self.models[0].name

    def list(self) -> builtins.list[BaseModel]:
        return builtins.list(self.models)

    def get(self, name: str) -> BaseModel:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)


class FakeBaseModelHasher:
    """A base model's "sha256" is that of its name: the real one hashes its weight files."""

    def sha256(self, base: BaseModel) -> str:
        return hashlib.sha256(base.name.encode()).hexdigest()


# --- seeding ------------------------------------------------------------------------------


def seed_account(uow: FakeUnitOfWorkFactory, account_id: str, *, at: datetime = EPOCH) -> None:
    with uow(write=True) as tx:
        tx.accounts.add(Account(id=account_id, name=account_id, created_at=at))
        tx.commit()


def seed_model(
    uow: FakeUnitOfWorkFactory, account_id: str, model_id: str, *, at: datetime = EPOCH
) -> Model:
    model = Model(
        id=model_id,
        account_id=account_id,
        display_name=model_id,
        custom_model_type=None,
        base_model="tiny",
        created_at=at,
        updated_at=at,
    )
    with uow(write=True) as tx:
        tx.models.add(model)
        tx.commit()
    return model


def _lease_expired(job: Job, now: datetime) -> bool:
    expired = job.lease_expires_at is not None and job.lease_expires_at < now
    return job.state is JobState.RUNNING and expired
