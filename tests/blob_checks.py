"""The blob invariant, checked from outside: what committed rows reference, and what exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.adapters.db.tables import ImageRow, PredictionBlobRow, TrainingBlobRow, TrainingRow
from loraforge.bootstrap import Container
from loraforge.domain.errors import NotFound


def referenced_keys(container: Container) -> set[str]:
    """Every blob key a committed row references: images, training inputs, LoRA weights,
    the input pictures of predictions not ended yet."""
    with Session(container.uow.engine) as s:
        keys: set[str] = set()
        for image in s.scalars(select(ImageRow)):
            keys |= {image.original_key, image.display_key, image.thumbnail_key}
        keys |= set(s.scalars(select(TrainingBlobRow.blob_key)))
        keys |= set(s.scalars(select(PredictionBlobRow.blob_key)))
        keys |= {k for k in s.scalars(select(TrainingRow.artifact_key)) if k is not None}
    return keys


def stored_keys(container: Container) -> set[str]:
    """Every blob in the container's store."""
    return set(container.blobs.iter_keys(older_than=datetime.now(UTC) + timedelta(days=1)))


def assert_committed_blobs_exist(container: Container) -> None:
    missing = set()
    for key in referenced_keys(container):
        try:
            container.blobs.size(key)
        except NotFound:
            missing.add(key)
    assert not missing, f"{len(missing)} blobs of committed rows are gone"
