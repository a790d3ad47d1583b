"""Runs a caption job on a worker: each image of the run captioned by the configured model.

Captioning takes seconds per image, so nothing is held meanwhile: the image is read, captioned,
and its caption written in a transaction that also records the run's progress, but only while the
image is as it was read (a client may have written a caption, replaced the bytes or deleted the
image meanwhile: then it is left alone). A worker that dies mid-run leaves the progress of the
images done; the next attempt goes on from there.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loraforge.domain.captions import CaptionSource, clean_caption
from loraforge.domain.entities import Image, ImageKind
from loraforge.domain.errors import NotFound
from loraforge.domain.work import CaptionRun, JobKind, RunStatus
from loraforge.ports import BlobStore, Captioner, Clock, UnitOfWork, UnitOfWorkFactory
from loraforge.services.jobs import JobService, Lease, LeaseLost
from loraforge.services.run_endings import RunEndings, RunKind
from loraforge.services.run_events import RunEvents

log = logging.getLogger("loraforge.captions")

NO_CAPTIONER = (
    "This worker has no captioning model (LORAFORGE_CAPTIONING_MODEL_DIR is not set where it runs)."
)


class Outcome(enum.Enum):
    CAPTIONED = "captioned"
    FAILED = "failed"  # the model failed on it; the image is left as it was
    SKIPPED = "skipped"  # gone, changed meanwhile, or captioned already


class CaptionRunner:
    kind = JobKind.CAPTION

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        jobs: JobService,
        blobs: BlobStore,
        captioner: Captioner | None,
        events: RunEvents,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._jobs = jobs
        self._blobs = blobs
        self._captioner = captioner
        self._endings = RunEndings(CAPTION_RUNS, events=events, clock=clock)
        self._clock = clock

    def run(self, lease: Lease, lost: Callable[[], bool]) -> None:
        run = self._begin(lease)
        if run is None:
            return
        if self._captioner is None:
            self._end(lease, run, RunStatus.FAILED, NO_CAPTIONER)
            return
        try:
            for image_id in run.image_ids[run.progress.step :]:
                if lost():
                    return  # the attempt that holds the job now goes on
                outcome = self._caption(self._captioner, run, image_id)
                self._record(lease, run, image_id, outcome)
        except LeaseLost:
            return
        except Exception as exc:
            self._end(lease, run, RunStatus.FAILED, f"Captioning failed: {exc}")
            raise
        self._end(lease, run, RunStatus.SUCCEEDED)

    def give_up(self, uow: UnitOfWork, run_id: str, reason: str) -> None:
        self._endings.give_up(uow, run_id, reason)

    def _begin(self, lease: Lease) -> CaptionRun | None:
        with self._jobs.guarded(lease) as uow:
            run = uow.caption_runs.get(lease.job.subject_id)
            if run is None or run.status.terminal:
                self._jobs.finish(uow, lease)
                uow.commit()
                return None
            run.start(self._clock.now())
            uow.caption_runs.update(run)
            uow.commit()
            return run

    def _caption(self, captioner: Captioner, run: CaptionRun, image_id: str) -> _Captioned:
        """Caption the image (slow; no transaction open) unless the run leaves it alone."""
        with self._uow() as uow:
            image = uow.images.get(run.account_id, image_id)
        if image is None or image.kind is not ImageKind.TRAINING or image.model_id != run.model_id:
            return _Captioned(Outcome.SKIPPED)
        if not run.overwrite and image.caption_source is not CaptionSource.NONE:
            return _Captioned(Outcome.SKIPPED)
        try:
            with self._blobs.open(image.display_key) as stream:
                data = stream.read()
        except NotFound:
            return _Captioned(Outcome.SKIPPED)  # deleted since it was read
        try:
            text = clean_caption(captioner.caption(data))
        except Exception:  # one bad image must not stop the others
            log.exception("captioning image %s failed", image_id)
            return _Captioned(Outcome.FAILED)
        if not text:
            return _Captioned(Outcome.FAILED)
        return _Captioned(Outcome.CAPTIONED, image, text)

    def _record(self, lease: Lease, run: CaptionRun, image_id: str, done: _Captioned) -> None:
        """The image's new caption, if it is still as it was read, and the run's progress, in
        one transaction while the lease is held."""
        with self._jobs.guarded(lease) as uow:
            outcome = done.outcome
            if done.image is not None:
                current = uow.images.get(run.account_id, image_id)
                if current is not None and _unchanged(done.image, current):
                    current.caption, current.caption_source = done.text, CaptionSource.AUTO
                    uow.images.update(current)
                else:
                    outcome = Outcome.SKIPPED
            run.progress.step += 1
            run.captioned += int(outcome is Outcome.CAPTIONED)
            run.failed += int(outcome is Outcome.FAILED)
            uow.caption_runs.update(run)
            uow.commit()

    def _end(
        self, lease: Lease, run: CaptionRun, status: RunStatus, error: str | None = None
    ) -> None:
        self._jobs.complete(
            lease, lambda uow: self._endings.finish(uow, run, status, error), error=error
        )


@dataclass(frozen=True)
class _Captioned:
    """What captioning one image came to; when captioned, the image as read and its caption."""

    outcome: Outcome
    image: Image | None = None
    text: str = ""


def _unchanged(before: Image, now: Image) -> bool:
    return (now.sha256, now.caption, now.caption_source) == (
        before.sha256,
        before.caption,
        before.caption_source,
    )


def _carry(stored: CaptionRun, result: CaptionRun) -> None:
    stored.progress = result.progress
    stored.captioned = result.captioned
    stored.failed = result.failed


def _payload(run: CaptionRun) -> dict[str, Any]:
    return {"id": run.id, "modelId": run.model_id, "status": run.status.value}


CAPTION_RUNS = RunKind(
    JobKind.CAPTION, rows=lambda uow: uow.caption_runs, carry=_carry, payload=_payload
)
