"""The background work a stored training image gets, whichever way it was stored.

An upload, a replacement of its bytes and a copy (Scenario's ``assetId``) all end the same way:
the image is measured for the dataset check and, when it has no caption and a captioning model
is configured, captioned. Both are queued in the transaction that writes the image, so a
committed image always has them and a rolled-back one never does; caption runs are handed to
the job queue once that transaction has committed.
"""

from __future__ import annotations

from collections.abc import Sequence

from loraforge.domain.entities import Image
from loraforge.ports import UnitOfWork
from loraforge.services.captions import CaptionService
from loraforge.services.inspections import InspectionQueue


class TrainingImageJobs:
    def __init__(
        self, *, captions: CaptionService | None = None, inspections: InspectionQueue | None = None
    ) -> None:
        self._captions = captions
        self._inspections = inspections

    def queue(self, uow: UnitOfWork, images: Sequence[Image]) -> list[str]:
        """Inside the write of ``images``: queue their measuring and captioning; returns the
        caption runs to ``submit`` once committed (images of other kinds get nothing)."""
        if self._inspections is not None:
            for image in images:
                self._inspections.enqueue(uow, image)
        return self._captions.queue_for(uow, images) if self._captions is not None else []

    def submit(self, runs: Sequence[str]) -> None:
        if self._captions is not None:
            self._captions.submit(runs)
