"""Samples and checkpoints of a training while it trains (issue 13 §2). No torch here.

A training's *sample plan* names the steps after which the trainer renders one image per
sample prompt with fixed seeds (the last of them is the final step) and keeps the LoRA of
some of those steps (its *checkpoints*; the final weights are not one). What each round
rendered is stored as images of the kind ``sample``; a *sample sheet* shows them all at the
end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraforge.domain.work import DEFAULT_GUIDANCE_SCALE, DEFAULT_INFERENCE_STEPS

# Sampling costs about this many training steps per image and denoising step: a training
# step is a UNet forward and backward (about three forwards), a denoising step of a sample
# two forwards (classifier-free guidance). Only the first ETA uses it; then the measured
# times take over (services.training_runs).
STEPS_PER_DENOISING_STEP = 2 / 3


@dataclass(frozen=True)
class SamplePlan:
    """A sample is what a prediction with the LoRA of its step (scale 1) gives for its prompt
    and seed at ``resolution`` x ``resolution`` with these settings and the base model's own
    scheduler: the trainer renders it through the generator's code. New plans use a default
    prediction's size and settings (``domain.work``)."""

    steps: tuple[int, ...]  # after these steps (ascending; the last is the final one)
    prompts: tuple[str, ...]  # the default prompt first, then the client's
    seed: int  # prompt ``n`` renders with ``seed + n``
    checkpoint_steps: tuple[int, ...]  # of ``steps``, those whose LoRA is kept
    resolution: int  # the sample's width and height, as a prediction's are
    inference_steps: int = DEFAULT_INFERENCE_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE

    def seed_of(self, position: int) -> int:
        return (self.seed + position) % 2**31

    @property
    def round_cost(self) -> float:
        """One round of samples in training steps (the work units of progress and ETA)."""
        return len(self.prompts) * self.inference_steps * STEPS_PER_DENOISING_STEP

    def as_manifest(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "prompts": list(self.prompts),
            "seed": self.seed,
            "checkpointSteps": list(self.checkpoint_steps),
            "resolution": self.resolution,
            "inferenceSteps": self.inference_steps,
            "guidanceScale": self.guidance_scale,
        }

    @classmethod
    def from_manifest(cls, frozen: dict[str, Any]) -> SamplePlan:
        return cls(
            steps=tuple(frozen["steps"]),
            prompts=tuple(frozen["prompts"]),
            seed=int(frozen["seed"]),
            checkpoint_steps=tuple(frozen["checkpointSteps"]),
            resolution=int(frozen["resolution"]),
            inference_steps=int(frozen["inferenceSteps"]),
            guidance_scale=float(frozen["guidanceScale"]),
        )


@dataclass(frozen=True)
class RenderedSample:
    position: int  # the prompt's index in the plan
    prompt: str
    seed: int
    image: bytes  # PNG


@dataclass(frozen=True)
class SampleRound:
    """What the trainer hands over after a plan step: the images and, at a checkpoint step,
    the LoRA file of that step (diffusers names, fp32, with the training's metadata)."""

    step: int
    loss: float | None
    samples: list[RenderedSample]
    checkpoint: Path | None = None


@dataclass(frozen=True)
class Sample:
    """A stored sample image of a training."""

    training_id: str
    image_id: str
    step: int
    position: int
    prompt: str
    seed: int


@dataclass(frozen=True)
class Checkpoint:
    """A kept LoRA of a training at one of its sample steps."""

    training_id: str
    step: int
    loss: float | None
    blob_key: str


@dataclass(frozen=True)
class SheetCell:
    image: bytes  # encoded
    label: str
