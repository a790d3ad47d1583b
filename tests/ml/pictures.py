"""Training pictures drawn procedurally, as the core would hand them over (encoded bytes)."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from tools.tiny.procedural import draw_dataset

from loraforge.domain.ml import TrainingSample

TRIGGER = "FJA90AB"


def png(pixels: NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def samples(count: int, *, seed: int, size: int = 160, **fixed: str) -> list[TrainingSample]:
    """``count`` pictures of one kind, larger than the training side so cropping happens."""
    return [
        TrainingSample(image=png(pixels), caption=f"{TRIGGER}, {caption}")
        for pixels, caption in draw_dataset(count, seed=seed, size=size, **fixed)
    ]
