"""Measuring new training images in the background, for the dataset check.

An upload of a model's training image adds a job (``JobKind.INSPECTION``, subject: the image)
in the transaction that writes the image; the upload itself measures nothing, so it stays as
fast as before. Every worker process polls the jobs table for these beside the trainings and
predictions it runs (``Worker``), whatever the queue: they are never queue messages, so with
Celery they do not wait behind a training for the one task slot. The job measures the image's
display variant once and stores the measures. Where no worker can run jobs (no ML extra)
nothing is queued and the dataset report measures on demand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from loraforge.domain.dataset import ImageQuality
from loraforge.domain.entities import Image, ImageKind
from loraforge.domain.errors import ImageRejected, NotFound
from loraforge.domain.work import JobKind
from loraforge.ports import UnitOfWork, UnitOfWorkFactory
from loraforge.services.dataset_check import DatasetService
from loraforge.services.jobs import JobService, Lease

log = logging.getLogger("loraforge.dataset")


class InspectionQueue:
    """Queues the measuring of a model's training images as they are written."""

    def __init__(self, *, jobs: JobService) -> None:
        self._jobs = jobs

    def enqueue(self, uow: UnitOfWork, image: Image) -> None:
        """Inside the transaction that adds ``image`` or replaces its bytes: queue its
        measuring when it is a model's training image (workers find it by polling)."""
        training = image.kind is ImageKind.TRAINING and image.model_id is not None
        if training and self._jobs.runnable:
            self._jobs.enqueue(uow, JobKind.INSPECTION, image.id)


class InspectionRunner:
    """The job handler: measure the image unless it is gone or measured already."""

    kind = JobKind.INSPECTION

    def __init__(self, *, uow: UnitOfWorkFactory, jobs: JobService, dataset: DatasetService):
        self._uow = uow
        self._jobs = jobs
        self._dataset = dataset

    def run(self, lease: Lease, lost: Callable[[], bool]) -> None:
        with self._uow() as uow:
            image = uow.images.get_unscoped(lease.job.subject_id)
            if image is not None and uow.images.qualities([image.id]):
                image = None  # measured already (on demand, or by an earlier job)
        quality: ImageQuality | None = None
        error = None
        if image is not None:
            try:
                quality = self._dataset.inspect(image)
            except (ImageRejected, NotFound) as exc:  # no retry makes these readable
                error = f"The image could not be measured: {exc.message}"

        def record(uow: UnitOfWork) -> None:
            if image is not None and quality is not None:
                uow.images.save_quality(image.id, image.display_key, quality)

        self._jobs.complete(lease, record, error=error)

    def give_up(self, uow: UnitOfWork, subject_id: str, reason: str) -> None:
        """Nothing to mark failed: the image stays unmeasured, and the report measures it."""
        log.warning("measuring image %s given up: %s", subject_id, reason)
