"""Contracts between the services and the outside world.

Each port is a Protocol; adapters implement them, ``bootstrap`` picks the implementation, tests
use fakes. Nothing here imports an infrastructure library.

Repositories and the unit of work live in ``ports.repositories``, the ML ports in ``ports.ml``;
all are importable from here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import BinaryIO, Protocol

from loraforge.domain.dataset import ImageQuality
from loraforge.domain.entities import ImageFormat, ProcessedImage, StoredBlob
from loraforge.domain.samples import SheetCell
from loraforge.ports.ml import BaseModelCatalog, Captioner, Generator, LoraFiles, Trainer
from loraforge.ports.provenance import (
    BaseModelHasher,
    Signer,
    SigningKeyRepository,
    TrainingReceiptRepository,
)
from loraforge.ports.repositories import (
    TASK_CONFLICT,
    AccountRepository,
    ApiKeyRepository,
    BlobLockRepository,
    CaptionRunRepository,
    ImageRepository,
    JobRepository,
    ModelRepository,
    PredictionRepository,
    TaskReceiptRepository,
    TrainingOutputRepository,
    TrainingPairRepository,
    TrainingRepository,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookRepository,
)

__all__ = [
    "TASK_CONFLICT",
    "AccountRepository",
    "ApiKeyRepository",
    "BaseModelCatalog",
    "BaseModelHasher",
    "BlobLockRepository",
    "BlobStore",
    "CaptionRunRepository",
    "Captioner",
    "Clock",
    "Generator",
    "IdFactory",
    "ImageProcessor",
    "ImageRepository",
    "JobQueue",
    "JobRepository",
    "JobWorker",
    "LoraFiles",
    "ModelRepository",
    "PredictionRepository",
    "SampleSheets",
    "Signer",
    "SigningKeyRepository",
    "TaskReceiptRepository",
    "Trainer",
    "TrainingOutputRepository",
    "TrainingPairRepository",
    "TrainingReceiptRepository",
    "TrainingRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UrlFetcher",
    "WebhookRepository",
    "WebhookSender",
]


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

    def decode_cost(self, source: BinaryIO) -> int | None:
        """How many pixels ``process`` would decode, read from the header alone in a bounded
        prefix (milliseconds, whatever the file); None when that prefix does not tell."""
        ...


class SampleSheets(Protocol):
    """Draws a training's sample sheet (issue 13 §2)."""

    def render(self, cells: Sequence[SheetCell], *, columns: int) -> bytes:
        """One PNG: the cells in rows of ``columns`` (in order), each image above a strip
        with its label. ``ValueError`` when there are no cells."""
        ...


class ImageInspector(Protocol):
    """Measures what the dataset check judges (focus, exposure, faces, perceptual hash)."""

    def inspect(self, data: bytes) -> ImageQuality:
        """The measures of an encoded picture (a display variant the server made)."""
        ...


class UrlFetcher(Protocol):
    """Fetches a user-supplied URL safely (SSRF-guarded, byte and time caps)."""

    def fetch(self, url: str, *, max_bytes: int) -> BinaryIO:
        """Return a seekable stream with the body, positioned at 0.

        Raises ``FetchFailed`` for every failure (blocked, refused, timed out, too large).
        """
        ...


class JobWorker(Protocol):
    """What a queue runs (``services.worker.Worker``): jobs, and the chores beside them."""

    def run_forever(self, stop: threading.Event) -> None:
        """Claim and run jobs, and deliver webhooks, until ``stop`` is set; between trainings
        and predictions wait on the queue (``JobQueue.wait``); quick jobs (measuring an image)
        run beside them."""
        ...

    def run_subject(self, subject_id: str) -> bool:
        """Run this training's or prediction's job unless it is done or held elsewhere; True
        when it was run."""
        ...

    def serve_side_duties(self, stop: threading.Event, *, requeue_every_s: float) -> None:
        """Until ``stop``: deliver due webhooks, run the quick jobs (found by polling), and
        hand back to the queue, every ``requeue_every_s``, jobs whose worker died or whose
        message was lost."""
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

    def run_worker(self, worker: JobWorker, stop: threading.Event) -> None:
        """Run ``worker`` on this queue's jobs in this process until ``stop`` is set or, for a
        queue with its own consumer loop, until that loop stops (SIGTERM/SIGINT)."""
        ...


class WebhookSender(Protocol):
    def post_json(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST with SSRF checks; return the status code; raise ``FetchFailed`` when blocked,
        refused or timed out."""
        ...


IdFactory = Callable[[], str]
