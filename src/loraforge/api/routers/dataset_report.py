"""/v1/models/{modelId}/dataset-report: the dataset check of a model's training images."""

from __future__ import annotations

from fastapi import APIRouter

from loraforge.api.errors import documented
from loraforge.api.presenters import dataset_report
from loraforge.api.schemas.dataset import DatasetReportRead
from loraforge.http.deps import ContainerDep, PrincipalDep

router = APIRouter(prefix="/v1/models/{modelId}/dataset-report", tags=["training data"])


@router.get("", responses=documented(404, 422), response_model=DatasetReportRead)
def get_dataset_report(modelId: str, who: PrincipalDep, c: ContainerDep) -> DatasetReportRead:
    """Duplicates, near-duplicates, resolution, focus, exposure, aspect ratio, faces (person
    models) and captions of every training image, each issue with the numbers that raised it;
    `ready` when at least `summary.minImages` images are usable. Images not measured yet are
    measured now (up to 100 per request); any left say `"measured": false`."""
    return dataset_report(c.dataset.report(who, modelId))
