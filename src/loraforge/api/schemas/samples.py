"""Wire shapes of a training's samples and checkpoints (issue 13 §2)."""

from __future__ import annotations

from pydantic import BaseModel

from loraforge.api.schemas.images import ImageRead


class SampleRead(BaseModel):
    step: int
    prompt: str
    seed: int
    image: ImageRead


class CheckpointRead(BaseModel):
    step: int
    loss: float | None
    sampleImageIds: list[str]
