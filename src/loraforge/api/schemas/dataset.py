"""Wire schemas of the dataset check: the report and the warnings of an upload."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DatasetIssue(BaseModel):
    """One issue, with the numbers that raised it beside ``code`` and ``message`` (per code:
    docs/training.md, "Dataset check")."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "code": "near_duplicate",
                    "message": "Nearly the same picture as image 4c1f… (perceptual hashes 4 "
                    "of 64 bits apart; 10 or fewer counts as near).",
                    "of": "4c1f…",
                    "distance": 4,
                    "threshold": 10,
                }
            ]
        },
    )

    code: str
    message: str


class DatasetImageRead(BaseModel):
    id: str
    width: int
    height: int
    faces: int | None = Field(description="Frontal faces found; null until measured.")
    measured: bool = Field(
        description="False until the image is measured: its focus, exposure, faces and "
        "near-duplicates are not known yet."
    )
    issues: list[DatasetIssue]


class DatasetSummary(BaseModel):
    count: int
    usable: int = Field(description="Images without an issue that makes them unusable.")
    captioned: int
    unmeasured: int = Field(description="Images not measured yet (see `measured`).")
    minImages: int = Field(description="Usable images needed to be `ready`.")
    issues: dict[str, int] = Field(description="How many images have each issue code.")


class DatasetReportRead(BaseModel):
    images: list[DatasetImageRead] = Field(description="The training images, in upload order.")
    summary: DatasetSummary
    ready: bool = Field(description="At least `minImages` usable images.")
