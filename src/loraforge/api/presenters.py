"""Entity → native wire shape (seed 003 names): every field of a native answer is written here.

Pure functions: each takes the entity and what it needs to present it (the request's signed
``ImageLinks`` where an answer carries image URLs), never a request or the service container
(an import-linter contract holds this module to it).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from loraforge.api.schemas.archives import (
    ArchiveEntryError,
    ArchiveEntryRead,
    ArchiveTotals,
    ArchiveUploaded,
)
from loraforge.api.schemas.dataset import (
    DatasetImageRead,
    DatasetIssue,
    DatasetReportRead,
    DatasetSummary,
)
from loraforge.api.schemas.images import (
    DataCreated,
    ImagePage,
    ImageRead,
    ImageUploaded,
    TrainingDataContent,
    TrainingDataRead,
)
from loraforge.api.schemas.models import ModelPage, ModelRead
from loraforge.api.schemas.provenance import (
    ErasureRead,
    LineagePrediction,
    LineageRead,
    LineageTraining,
    SigningKeyRead,
)
from loraforge.api.schemas.samples import CheckpointRead, SampleRead
from loraforge.api.schemas.work import (
    BaseModelRead,
    CaptionRunRead,
    PredictionCreated,
    PredictionRead,
    ProgressRead,
    TrainingCreated,
    TrainingRead,
    TrainingSummary,
    WebhookSecret,
)
from loraforge.domain.dataset import Issue
from loraforge.domain.entities import Image, ImageVariant, Model, Page
from loraforge.domain.ml import BaseModel, supported_inputs
from loraforge.domain.provenance import ALGORITHM, SigningKey, public_jwk
from loraforge.domain.work import CaptionRun, Prediction, Progress, Run, Training
from loraforge.http.image_types import TYPE_NAME_BY_KIND
from loraforge.http.links import ImageLinks
from loraforge.services.dataset_check import CheckedDataset
from loraforge.services.provenance import Erasure, Lineage
from loraforge.services.run_views import prediction_view, progress_view, run_view, training_view
from loraforge.services.training_archives import ArchiveEntry, ArchiveReport, EntryStatus
from loraforge.services.training_outputs import CheckpointView, SampleView

# --- models ------------------------------------------------------------------------------


def model_read(model: Model) -> ModelRead:
    return ModelRead(
        id=model.id,
        displayName=model.display_name,
        customModelType=model.custom_model_type,
        baseModel=model.base_model,
        createdAt=model.created_at,
        updatedAt=model.updated_at,
    )


def model_page(page: Page[Model]) -> ModelPage:
    return ModelPage(
        items=[model_read(m) for m in page.items],
        total=page.total,
        pageNum=page.page_num,
        pageSize=page.page_size,
    )


# --- images and training data ------------------------------------------------------------


def image_read(image: Image, links: ImageLinks) -> ImageRead:
    return ImageRead(
        id=image.id,
        url=links.content(image.id, ImageVariant.ORIGINAL),
        displayUrl=links.content(image.id, ImageVariant.DISPLAY),
        thumbnailUrl=links.content(image.id, ImageVariant.THUMBNAIL),
        modelId=image.model_id,
        type=TYPE_NAME_BY_KIND[image.kind],
        format=image.format.value,
        width=image.width,
        height=image.height,
        bytes=image.size_bytes,
        sha256=image.sha256,
        name=image.name,
        caption=image.caption,
        captionSource=image.caption_source.value,
        createdAt=image.created_at,
        lastUsedAt=image.last_used_at,
    )


def image_page(page: Page[Image], links: ImageLinks) -> ImagePage:
    return ImagePage(
        items=[image_read(i, links) for i in page.items],
        total=page.total,
        pageNum=page.page_num,
        pageSize=page.page_size,
    )


def image_uploaded(image: Image, links: ImageLinks, warnings: Iterable[Issue]) -> ImageUploaded:
    return ImageUploaded(
        **image_read(image, links).model_dump(), warnings=[issue_read(i) for i in warnings]
    )


def data_created(image: Image, warnings: Iterable[Issue]) -> DataCreated:
    return DataCreated(dataId=image.id, warnings=[issue_read(i) for i in warnings])


def archive_uploaded(report: ArchiveReport) -> ArchiveUploaded:
    """One result per file; only the fields its status has are set (the others are left out
    of the answer)."""
    return ArchiveUploaded(
        results=[archive_entry_read(e) for e in report.entries],
        totals=ArchiveTotals(
            created=report.count(EntryStatus.CREATED),
            rejected=report.count(EntryStatus.REJECTED),
            skipped=report.count(EntryStatus.SKIPPED),
        ),
    )


def archive_entry_read(entry: ArchiveEntry) -> ArchiveEntryRead:
    if entry.image is not None:
        return ArchiveEntryRead(
            name=entry.name,
            status=entry.status.value,
            dataId=entry.image.id,
            warnings=[issue_read(i) for i in entry.warnings],
        )
    return ArchiveEntryRead(
        name=entry.name,
        status=entry.status.value,
        error=ArchiveEntryError(code=entry.code or "error", message=entry.message or ""),
    )


def training_data_read(image: Image, links: ImageLinks) -> TrainingDataRead:
    return TrainingDataRead(
        dataId=image.id,
        url=links.content(image.id, ImageVariant.ORIGINAL),
        format=image.format.value,
        width=image.width,
        height=image.height,
        bytes=image.size_bytes,
        sha256=image.sha256,
        name=image.name,
        caption=image.caption,
        captionSource=image.caption_source.value,
        createdAt=image.created_at,
    )


def training_data_list(images: Iterable[Image], links: ImageLinks) -> list[TrainingDataRead]:
    return [training_data_read(image, links) for image in images]


def training_data_content(image: Image, original: bytes, links: ImageLinks) -> TrainingDataContent:
    meta = training_data_read(image, links)
    encoded = base64.b64encode(original).decode()
    return TrainingDataContent(
        **meta.model_dump(), dataUrl=f"data:{image.format.mime};base64,{encoded}"
    )


# --- the dataset check -------------------------------------------------------------------


def issue_read(issue: Issue) -> DatasetIssue:
    """The code and message, and beside them the numbers that raised the issue."""
    return DatasetIssue.model_validate(
        {**issue.details, "code": issue.code, "message": issue.message}
    )


def dataset_report(checked: CheckedDataset) -> DatasetReportRead:
    report = checked.report
    return DatasetReportRead(
        images=[
            DatasetImageRead(
                id=i.id,
                width=i.width,
                height=i.height,
                faces=i.faces,
                measured=i.id not in checked.unmeasured,
                issues=[issue_read(issue) for issue in i.issues],
            )
            for i in report.images
        ],
        summary=DatasetSummary(
            count=report.count,
            usable=report.usable,
            captioned=report.captioned,
            unmeasured=len(checked.unmeasured),
            minImages=report.min_images,
            issues=report.issue_counts,
        ),
        ready=report.ready,
    )


# --- trainings and predictions -----------------------------------------------------------


def progress_read(progress: Progress) -> ProgressRead:
    return ProgressRead(**progress_view(progress))


def training_created(training: Training) -> TrainingCreated:
    return TrainingCreated(trainingId=training.id)


def training_summaries(trainings: Iterable[Training]) -> list[TrainingSummary]:
    return [TrainingSummary(id=t.id, status=t.status.value) for t in trainings]


def run_fields(run: Run) -> dict[str, Any]:
    """The fields every run (training, prediction) shows the same way."""
    return run_view(run)


def training_read(training: Training) -> TrainingRead:
    return TrainingRead(**training_view(training))


def caption_run_read(run: CaptionRun) -> CaptionRunRead:
    return CaptionRunRead(
        **run_fields(run),
        modelId=run.model_id,
        overwrite=run.overwrite,
        imageIds=run.image_ids,
        captioned=run.captioned,
        failed=run.failed,
    )


def prediction_created(prediction: Prediction) -> PredictionCreated:
    return PredictionCreated(predictionId=prediction.id)


def prediction_read(p: Prediction, links: ImageLinks) -> PredictionRead:
    return PredictionRead(**prediction_view(p, links.content))


def sample_read(view: SampleView, links: ImageLinks) -> SampleRead:
    s = view.sample
    return SampleRead(
        step=s.step, prompt=s.prompt, seed=s.seed, image=image_read(view.image, links)
    )


def checkpoint_read(view: CheckpointView) -> CheckpointRead:
    c = view.checkpoint
    return CheckpointRead(step=c.step, loss=c.loss, sampleImageIds=view.sample_image_ids)


# --- platform ----------------------------------------------------------------------------


def base_model_list(models: Iterable[BaseModel], *, default: str) -> list[BaseModelRead]:
    return [
        BaseModelRead(
            name=m.name,
            family=m.family.value,
            resolution=m.resolution,
            renderResolution=m.resolution,
            inputs=[i.value for i in supported_inputs(m)],
            default=m.name == default,
            description=m.description,
        )
        for m in models
    ]


def webhook_secret(secret: str) -> WebhookSecret:
    return WebhookSecret(secret=secret)


def signing_key_read(key: SigningKey, pem: str) -> SigningKeyRead:
    return SigningKeyRead(
        keyId=key.id, algorithm=ALGORITHM, jwk=public_jwk(key), pem=pem, createdAt=key.created_at
    )


def lineage_read(lineage: Lineage) -> LineageRead:
    used = {t.id for t in lineage.trainings}
    return LineageRead(
        imageId=lineage.image.id,
        sha256=lineage.image.sha256,
        trainings=[
            LineageTraining(
                id=t.id,
                modelId=t.model_id,
                status=t.status.value,
                createdAt=t.created_at,
                deletedAt=t.deleted_at,
                erasedAt=t.erased_at,
            )
            for t in lineage.trainings
        ],
        predictions=[
            LineagePrediction(
                id=p.id,
                status=p.status.value,
                trainingIds=list(
                    dict.fromkeys(c.training_id for c in p.scale_configs if c.training_id in used)
                ),
                outputImageIds=p.output_image_ids,
                createdAt=p.created_at,
            )
            for p in lineage.predictions
        ],
    )


def erasure_read(erasure: Erasure) -> ErasureRead:
    return ErasureRead(
        imageId=erasure.image_id,
        erasedAt=erasure.erased_at,
        erasedImageIds=erasure.image_ids,
        erasedTrainingIds=erasure.training_ids,
        blobsRemoved=erasure.blobs_removed,
    )
