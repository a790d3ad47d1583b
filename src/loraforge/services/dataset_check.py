"""The dataset check of a model's training images: the report, an upload's warnings, and what a
training freezes. The rules and thresholds are ``domain.dataset``'s.

What is measured of an image (focus, exposure, faces, perceptual hash: ``ImageQuality``) is
measured once, on its display variant, by the ``ImageInspector``, and stored: in the background
after its upload (``services.inspections``), or here, on demand, for images that have no
measures yet (uploaded before measures were stored, or whose job has not run yet). On demand
means up to ``MEASURE_AT_ONCE`` images per call, so that a report over many old images answers
within seconds; the rest are reported as not measured and measured by the next calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loraforge.domain.dataset import (
    DatasetImage,
    DatasetReport,
    ImageQuality,
    Issue,
    check_dataset,
    is_person_model,
)
from loraforge.domain.entities import Image, ImageKind, Model, Principal
from loraforge.domain.errors import ImageRejected, NotFound
from loraforge.ports import (
    BaseModelCatalog,
    BlobStore,
    ImageInspector,
    UnitOfWork,
    UnitOfWorkFactory,
)
from loraforge.services.base_models import base_model_named

log = logging.getLogger("loraforge.dataset")

TRAINING = ImageKind.TRAINING
MAX_TRAINING_IMAGES = 1000  # a training uses its model's newest this many training images
MEASURE_AT_ONCE = 100  # images measured on demand per call: 10-40 ms each


@dataclass(frozen=True)
class CheckedDataset:
    """The check's report, and which of its images have not been measured (yet): for those
    only size, file duplicates and caption are known."""

    report: DatasetReport
    unmeasured: frozenset[str]

    def frozen(self) -> dict[str, Any]:
        """The counts a training freezes into its manifest (``dataset``)."""
        report = self.report
        return {
            "count": report.count,
            "usable": report.usable,
            "captioned": report.captioned,
            "unmeasured": len(self.unmeasured),
            "minImages": report.min_images,
            "ready": report.ready,
            "issues": dict(report.issue_counts),
        }


def upload_order(images: Iterable[Image]) -> list[Image]:
    """Oldest first, as listings order them (newest first) reversed."""
    return sorted(images, key=lambda i: (i.created_at, i.id))


def training_images(uow: UnitOfWork, model_id: str) -> list[Image]:
    """The training images a training of the model would use, in upload order."""
    images, _ = uow.images.list_for_model(
        model_id, kinds=[TRAINING], offset=0, limit=MAX_TRAINING_IMAGES
    )
    return upload_order(images)


class DatasetService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        blobs: BlobStore,
        inspector: ImageInspector,
        catalog: BaseModelCatalog,
        min_images: int,
    ) -> None:
        """``min_images``: usable images a dataset needs to be ``ready``."""
        self._uow = uow
        self._blobs = blobs
        self._inspector = inspector
        self._catalog = catalog
        self._min_images = min_images

    def inspect(self, image: Image) -> ImageQuality:
        """Measure the image's display variant. Raises ``ImageRejected`` when its bytes cannot
        be read as an image, ``NotFound`` when they are gone (the image was deleted)."""
        with self._blobs.open(image.display_key) as stream:
            data = stream.read()
        return self._inspector.inspect(data)

    def report(self, who: Principal, model_id: str) -> CheckedDataset:
        """The check of the model's training images, measuring those without measures first
        (up to ``MEASURE_AT_ONCE``)."""
        self.measure_missing(who, model_id)
        with self._uow() as uow:
            model = self._model(uow, who, model_id)
            return self.check(uow, model, training_images(uow, model_id))

    def check(self, uow: UnitOfWork, model: Model, images: Sequence[Image]) -> CheckedDataset:
        """The check of ``images`` of ``model`` with the measures stored now (inside the
        caller's transaction: a training judges exactly the images it freezes)."""
        ordered = upload_order(images)
        return self._judge(model, ordered, uow.images.qualities(i.id for i in ordered))

    def measure_missing(self, who: Principal, model_id: str) -> int:
        """Measure and store up to ``MEASURE_AT_ONCE`` of the model's training images that
        have no measures of their current bytes, oldest first; returns how many were stored.
        An image whose bytes cannot be measured is left unmeasured (and logged)."""
        with self._uow() as uow:
            self._model(uow, who, model_id)
            images = training_images(uow, model_id)
            measured = uow.images.qualities(i.id for i in images)
        missing = [i for i in images if i.id not in measured][:MEASURE_AT_ONCE]
        results = [(i, q) for i in missing if (q := self._try_inspect(i)) is not None]
        if not results:
            return 0
        with self._uow(write=True) as uow:
            stored = sum(uow.images.save_quality(i.id, i.display_key, q) for i, q in results)
            uow.commit()
        return stored

    def warnings(self, who: Principal, image: Image) -> list[Issue]:
        """The issues of a new training image found so far: its size, its caption and an
        earlier copy of the same file; what needs measuring comes with the report. Never
        raises: the upload is stored, and a warning never refuses it."""
        if image.kind is not TRAINING or image.model_id is None:
            return []
        try:
            with self._uow() as uow:
                model = uow.models.get(who.account_id, image.model_id)
                if model is None:
                    return []
                first = uow.images.first_with_sha256(image.model_id, TRAINING, image.sha256)
            earlier = [first] if first is not None and first.id != image.id else []
            # A new upload has no measures yet: only what needs none is judged.
            checked = self._judge(model, [*earlier, image], measured={})
        except Exception:
            log.exception("the warnings of image %s could not be worked out", image.id)
            return []
        return next(r.issues for r in checked.report.images if r.id == image.id)

    # --- helpers ------------------------------------------------------------------------

    def _judge(
        self, model: Model, ordered: Sequence[Image], measured: Mapping[str, ImageQuality]
    ) -> CheckedDataset:
        """``domain.dataset``'s check of ``ordered`` (upload order) with these measures."""
        report = check_dataset(
            [_dataset_image(i, measured.get(i.id)) for i in ordered],
            resolution=self._resolution(model),
            person=is_person_model(model.custom_model_type),
            min_images=self._min_images,
        )
        return CheckedDataset(report, frozenset(i.id for i in ordered if i.id not in measured))

    @staticmethod
    def _model(uow: UnitOfWork, who: Principal, model_id: str) -> Model:
        model = uow.models.get(who.account_id, model_id)
        if model is None:
            raise NotFound(f"No model {model_id}.")
        return model

    def _resolution(self, model: Model) -> int:
        return base_model_named(self._catalog, model.base_model).resolution

    def _try_inspect(self, image: Image) -> ImageQuality | None:
        try:
            return self.inspect(image)
        except (ImageRejected, NotFound):
            log.warning("image %s could not be measured", image.id, exc_info=True)
            return None


def _dataset_image(image: Image, quality: ImageQuality | None) -> DatasetImage:
    return DatasetImage(
        id=image.id,
        width=image.width,
        height=image.height,
        sha256=image.sha256,
        caption=image.caption,
        quality=quality,
    )
