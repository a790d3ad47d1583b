"""Wire schemas of a training-set archive upload: one result per file, and the totals."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from loraforge.api.schemas.dataset import DatasetIssue


class ArchiveEntryError(BaseModel):
    code: str
    message: str


class ArchiveEntryRead(BaseModel):
    """What became of one file of the archive (a caption file is answered with its image)."""

    name: str = Field(description="The file's name in the archive (never used as a path).")
    status: Literal["created", "rejected", "skipped"]
    dataId: str | None = Field(None, description="`created`: the new training data item.")
    error: ArchiveEntryError | None = Field(
        None,
        description="`rejected`: the error a single upload of the same bytes and caption "
        "gets (`unsupported_format`, `corrupt_image`, `limit_reached` beyond the model's "
        "places…); `skipped`: why the file is no image to add (`orphan_caption`, "
        "`not_an_image`).",
    )
    warnings: list[DatasetIssue] | None = Field(
        None,
        description="`created`: the dataset check's issues found so far, as a single upload "
        "answers them (never a refusal).",
    )


class ArchiveTotals(BaseModel):
    created: int
    rejected: int
    skipped: int


class ArchiveUploaded(BaseModel):
    results: list[ArchiveEntryRead] = Field(description="One per file, in name order.")
    totals: ArchiveTotals
