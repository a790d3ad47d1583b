"""Shared helpers for the work tests: a manual clock and a queued training."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import BytesIO

from loraforge.bootstrap import Container
from loraforge.domain.entities import ALL_FORMATS, ImageKind
from loraforge.domain.work import TrainingSpeed
from loraforge.services.images import Upload
from tests import imagefactory


class ManualClock:
    def __init__(self) -> None:
        self.time = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)


def queued_training(container: Container) -> str:
    issued = container.keys.create(name="t")
    who = container.keys.authenticate(issued.plaintext)
    model = container.models.create(who, display_name="m")
    container.images.ingest(
        who,
        Upload(stream=BytesIO(imagefactory.png(32, 32))),
        kind=ImageKind.TRAINING,
        model_id=model.id,
        allowed=ALL_FORMATS,
    )
    return container.trainings.start(who, model.id, strength=0, speed=TrainingSpeed.FAST).id
