"""Wire schemas for trainings, predictions and base models (seed 003 names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from loraforge.api.schemas.common import WireModel
from loraforge.domain.captions import DEFAULT_TEMPLATE, MAX_CLASS_WORD, MAX_TEMPLATE
from loraforge.domain.work import DEFAULT_GUIDANCE_SCALE, DEFAULT_INFERENCE_STEPS, DEFAULT_SIDE

# Numbers are strict (``strict=True``): the seed says integer, so ``true`` or ``"7"`` is a 422,
# not a silent 1 or 7. Floats still take integers (``"scale": 1``).


class TrainingCreate(WireModel):
    trainingStrength: int = Field(5, ge=0, le=10, strict=True, examples=[7])
    trainingSpeed: Literal["fast", "high_quality"] = "fast"
    webhookUrl: str | None = Field(None, max_length=2048)
    webhookEvents: list[str] | None = Field(
        None,
        max_length=16,
        description="The lifecycle events the webhook announces, of `training.started`, "
        "`training.progress`, `training.sample`, `training.succeeded`, `training.failed`, "
        "`training.canceled`; default: one webhook when the run ends, in its usual payload "
        "(docs/api.md, Webhooks).",
        examples=[["training.started", "training.progress", "training.succeeded"]],
    )
    triggerWord: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="The word that calls up the trained concept; default: a new random one.",
        examples=["ohwx"],
    )
    classWord: str | None = Field(
        None, max_length=MAX_CLASS_WORD, description="What kind of thing the concept is."
    )
    captionTemplate: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TEMPLATE,
        description="Each image's training caption, from the placeholders {trigger}, {class} "
        f"and {{caption}}; default `{DEFAULT_TEMPLATE}`. Empty parts leave no double spaces "
        "or dangling commas.",
    )
    requireReadyDataset: bool = Field(
        False,
        strict=True,
        description="Refuse (409 `dataset_not_ready`) unless the dataset report is `ready`.",
    )
    flipAugment: bool = Field(
        False,
        strict=True,
        description="Also train on mirror images: for subjects without a handedness (no text).",
    )
    samplePrompts: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(
        None,
        max_length=4,
        description="Up to 4 prompts rendered (fixed seeds) at every sample step, after the "
        "default `a photo of {trigger} {class}`; each at most 1,000 characters.",
    )


class TrainingCreated(BaseModel):
    trainingId: str


class ProgressRead(BaseModel):
    step: int
    totalSteps: int
    loss: float | None
    etaSeconds: float | None


class TrainingSummary(BaseModel):
    id: str
    status: str


class TrainingRead(BaseModel):
    id: str
    modelId: str
    status: str
    triggerWord: str
    trainingStrength: int
    trainingSpeed: str
    progress: ProgressRead
    manifest: dict[str, Any]
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None
    error: str | None = None
    erasedAt: datetime | None = Field(
        None,
        description="When an image it trained on was erased: its weights, samples and export "
        "are gone (410 `erased`); its status, history and receipt stay.",
    )
    webhookEvents: list[str] | None = Field(
        None, description="The lifecycle events its webhook announces; null: the default."
    )


class CaptionRunCreate(WireModel):
    overwrite: bool = Field(
        False,
        strict=True,
        description="Caption every training image, replacing their captions (user-written "
        "ones too); default: only those without a caption (`captionSource` `none`).",
    )


class CaptionRunRead(BaseModel):
    id: str
    modelId: str
    status: str
    overwrite: bool
    imageIds: list[str] = Field(description="The images this run captions, in upload order.")
    captioned: int = Field(description="Images that got a new caption so far.")
    failed: int = Field(description="Images the captioning model failed on (left unchanged).")
    progress: ProgressRead
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None
    error: str | None = None


class ScaleConfigIn(WireModel):
    scale: float = Field(ge=-2, le=2, strict=True, examples=[0.8])
    modelId: str
    trainingId: str
    checkpointStep: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="Use the training's checkpoint at this step (`GET …/checkpoints`) "
        "instead of its final weights.",
    )


class ImageSize(WireModel):
    width: int = Field(DEFAULT_SIDE, ge=512, le=1536, multiple_of=8, strict=True)
    height: int = Field(DEFAULT_SIDE, ge=512, le=1536, multiple_of=8, strict=True)


PICTURE = (
    "An image id of your account, a data URI (`data:image/png;base64,...`) or an http(s) URL, "
    "decoded and checked as uploads are."
)


class ControlIn(WireModel):
    type: Literal["canny", "depth", "pose"]
    image: str = Field(min_length=1, description=PICTURE)
    scale: float = Field(1.0, ge=0, le=2, strict=True)


class PredictionCreate(WireModel):
    scaleConfigs: dict[str, ScaleConfigIn] = Field(min_length=1, max_length=8)
    prompt: str = Field(min_length=1, max_length=2000)
    seed: int | None = Field(None, ge=0, le=2**32 - 1, strict=True)
    image_size: ImageSize = Field(default_factory=ImageSize)
    num_images: int = Field(1, ge=1, le=4, strict=True)
    output_format: Literal["jpeg", "png"] = "png"
    guidance_scale: float = Field(DEFAULT_GUIDANCE_SCALE, ge=0, le=10, strict=True)
    num_inference_steps: int = Field(DEFAULT_INFERENCE_STEPS, ge=1, le=50, strict=True)
    webhookUrl: str | None = Field(None, max_length=2048)
    negative_prompt: str = Field("", max_length=1000, description="What to steer away from.")
    scheduler: (
        Literal["euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc"] | None
    ) = Field(None, description="The sampler; default: the base model's own.")
    init_image: str | None = Field(
        None, min_length=1, description=f"Image-to-image from this picture. {PICTURE}"
    )
    strength: float | None = Field(
        None,
        ge=0,
        le=1,
        strict=True,
        description="With init_image: how much of it is repainted (default 0.75; 0 keeps it).",
    )
    mask_image: str | None = Field(
        None,
        min_length=1,
        description=f"With init_image: inpainting; white repaints, black keeps. {PICTURE}",
    )
    reference_images: list[str] | None = Field(
        None, min_length=1, max_length=4, description="Image ids for IP-Adapter conditioning."
    )
    reference_scale: float | None = Field(None, ge=0, le=1, strict=True)
    control: ControlIn | None = Field(None, description="ControlNet conditioning.")
    webhookEvents: list[str] | None = Field(
        None,
        max_length=16,
        description="The lifecycle events the webhook announces, of `prediction.started`, "
        "`prediction.succeeded`, `prediction.failed`, `prediction.canceled`; default: one "
        "webhook when the run ends, in its usual payload (docs/api.md, Webhooks).",
        examples=[["prediction.started", "prediction.succeeded"]],
    )


class PredictionCreated(BaseModel):
    predictionId: str


class PredictionRead(BaseModel):
    id: str
    status: str
    outputImages: list[str]
    outputImageIds: list[str]
    seed: int
    prompt: str
    scaleConfigs: dict[str, dict[str, Any]]
    image_size: dict[str, int]
    num_images: int
    output_format: str
    guidance_scale: float
    num_inference_steps: int
    negative_prompt: str
    scheduler: str | None
    init_image: str | None = Field(
        description="As given; a data URI as `data:sha256,<hex digest of its bytes>`."
    )
    strength: float | None
    mask_image: str | None
    progress: ProgressRead
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None
    error: str | None = None
    webhookEvents: list[str] | None = Field(
        None, description="The lifecycle events its webhook announces; null: the default."
    )


class BaseModelRead(BaseModel):
    name: str
    family: str
    resolution: int
    renderResolution: int = Field(
        description="Requests of at least twice `resolution` (by area) are rendered at this "
        "side's area, keeping their aspect ratio, and upscaled (Lanczos) to the size asked for."
    )
    inputs: list[str] = Field(
        description="The optional prediction inputs it supports (negative_prompt, scheduler, "
        "init_image, mask_image, reference_images, control)."
    )
    default: bool
    description: str


class WebhookSecret(BaseModel):
    secret: str = Field(description="whsec_…: shown once; verify `webhook-signature` with it.")
