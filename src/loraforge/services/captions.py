"""Caption runs: captioning a model's training images as a job, never in a request.

A run is made by ``POST /v1/models/{id}/captions`` (``request``) or, while a captioning model is
configured, by every write that leaves a training image of a model without a caption (an upload,
a copy, new bytes for an auto-captioned image: ``queue_for``, inside that write's transaction).
Workers run them (``services.caption_runs``); clients poll ``get``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loraforge.domain.captions import CaptionSource, user_caption
from loraforge.domain.entities import Image, ImageKind, Principal
from loraforge.domain.errors import Conflict, InvalidInput, NotFound
from loraforge.domain.work import CaptionRun, JobKind, RunStatus
from loraforge.ports import Clock, IdFactory, JobQueue, UnitOfWork, UnitOfWorkFactory
from loraforge.services.jobs import JobService

MAX_IMAGES = 1000
UNAVAILABLE = (
    "This server has no captioning model: set LORAFORGE_CAPTIONING_MODEL_DIR to caption images."
)


class CaptionService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        jobs: JobService,
        queue: JobQueue,
        clock: Clock,
        new_id: IdFactory,
        available: bool,
    ) -> None:
        """``available``: a captioning model is configured (workers caption with it)."""
        self._uow = uow
        self._jobs = jobs
        self._queue = queue
        self._clock = clock
        self._new_id = new_id
        self.available = available

    def request(self, who: Principal, model_id: str, *, overwrite: bool) -> CaptionRun:
        """Caption the model's training images without a caption (``captionSource`` none), or
        every one (``overwrite``, user-written captions too), as a job handed to the queue once
        committed. ``Conflict(captioning_unavailable)`` without a captioning model."""
        with self._uow(write=True) as uow:
            if uow.models.get(who.account_id, model_id, lock=True) is None:
                raise NotFound(f"No model {model_id}.")
            if not self.available:
                raise Conflict(UNAVAILABLE, code="captioning_unavailable")
            images, _ = uow.images.list_for_model(
                model_id, kinds=[ImageKind.TRAINING], offset=0, limit=MAX_IMAGES
            )
            wanted = [i for i in reversed(images) if overwrite or _uncaptioned(i)]  # upload order
            run = self._add(uow, who.account_id, model_id, wanted, overwrite=overwrite)
            uow.commit()
        self._queue.submit(run.id)
        return run

    def queue_for(self, uow: UnitOfWork, images: Iterable[Image]) -> list[str]:
        """Inside the caller's write: a run for the images that a model's training needs
        captioned, when a captioning model is configured. Returns the run ids to ``submit``
        once committed."""
        runs: list[str] = []
        if not self.available:
            return runs
        by_model: dict[tuple[str, str], list[Image]] = {}
        for image in images:
            if image.kind is ImageKind.TRAINING and image.model_id and _uncaptioned(image):
                by_model.setdefault((image.account_id, image.model_id), []).append(image)
        for (account_id, model_id), wanted in by_model.items():
            runs.append(self._add(uow, account_id, model_id, wanted, overwrite=False).id)
        return runs

    def submit(self, run_ids: Iterable[str]) -> None:
        """Hand committed runs (``queue_for``'s) to the job queue."""
        for run_id in run_ids:
            self._queue.submit(run_id)

    def get(self, who: Principal, model_id: str, run_id: str) -> CaptionRun:
        with self._uow() as uow:
            run = uow.caption_runs.get(run_id, account_id=who.account_id)
            if run is None or run.model_id != model_id:
                raise NotFound(f"No caption run {run_id}.")
            if uow.models.get(who.account_id, model_id) is None:
                raise NotFound(f"No model {model_id}.")
        return run

    def _add(
        self,
        uow: UnitOfWork,
        account_id: str,
        model_id: str,
        images: list[Image],
        *,
        overwrite: bool,
    ) -> CaptionRun:
        run = CaptionRun(
            id=self._new_id(),
            account_id=account_id,
            model_id=model_id,
            status=RunStatus.QUEUED,
            overwrite=overwrite,
            image_ids=[i.id for i in images],
            created_at=self._clock.now(),
        )
        run.progress.total_steps = len(images)
        uow.caption_runs.add(run)
        self._jobs.enqueue(uow, JobKind.CAPTION, run.id)
        return run


def caption_fields(kind: ImageKind, caption: str | None) -> dict[str, Any]:
    """The caption fields of a new image: a given caption is the client's (``user``), even an
    empty one; only training images take one (422 naming ``caption`` otherwise)."""
    if caption is None:
        return {}
    if kind is not ImageKind.TRAINING:
        raise InvalidInput(
            "Only training images (type modelInput) take a caption.", field="caption"
        )
    return {"caption": user_caption(caption), "caption_source": CaptionSource.USER}


def _uncaptioned(image: Image) -> bool:
    return image.caption_source is CaptionSource.NONE
