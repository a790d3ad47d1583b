"""Scenario wire shapes (scenario-sdk 2.4.0): request bodies in, wrapped objects out.

Field names are the wire's camelCase. Request bodies ignore keys they do not know (newer SDKs
send more), and clients can set no server-owned field because none is read from them.
Response enums stay within the SDK's literals so its strict validation accepts every answer.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ModelType = Literal[
    "custom",
    "elevenlabs-voice",
    "flux.1",
    "flux.1-composition",
    "flux.1-kontext-dev",
    "flux.1-kontext-lora",
    "flux.1-krea-dev",
    "flux.1-krea-lora",
    "flux.1-lora",
    "flux.1-pro",
    "flux.1.1-pro-ultra",
    "flux.2-dev-edit-lora",
    "flux.2-dev-lora",
    "flux.2-klein-4b-edit-lora",
    "flux.2-klein-4b-lora",
    "flux.2-klein-9b-edit-lora",
    "flux.2-klein-9b-lora",
    "flux.2-klein-base-4b-edit-lora",
    "flux.2-klein-base-4b-lora",
    "flux.2-klein-base-9b-edit-lora",
    "flux.2-klein-base-9b-lora",
    "flux1.1-pro",
    "gpt-image-1",
    "qwen-image-2512-lora",
    "qwen-image-edit-2509-lora",
    "qwen-image-edit-2511-lora",
    "qwen-image-edit-lora",
    "qwen-image-lora",
    "zimage-de-turbo-lora",
    "zimage-lora",
    "zimage-turbo-lora",
]
MODEL_TYPES: frozenset[str] = frozenset(get_args(ModelType))
LORA_TYPES: frozenset[str] = frozenset(t for t in MODEL_TYPES if t.endswith("-lora"))
DEFAULT_TYPE = "flux.1-lora"

ModelStatus = Literal["copying", "failed", "new", "trained", "training", "training-canceled"]
JobStatus = Literal[
    "canceled", "failure", "finalizing", "in-progress", "pending", "queued", "success", "warming-up"
]
AssetSource = Literal["uploaded", "inference-txt2img"]
JobType = Literal["flux-model-training", "model-training", "musubi-model-training"]
Stage = Literal[
    "pending", "pending-captcha", "queued-for-train", "ready-for-captcha", "running-train",
    "starting-train",
]  # fmt: skip


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


# Numbers are strict: ``true`` is no step count (lax mode reads it as 1) and ``"5"`` no integer.
# Floats still take integers, as the SDK's ``float`` fields may carry them.
Int = Annotated[int, Field(strict=True)]
Float = Annotated[float, Field(strict=True)]
# A name, when given, is not empty or only spaces (stored stripped).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
FileName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


# --- requests ---------------------------------------------------------------------------


class Concept(Wire):
    modelId: str = Field(min_length=1, max_length=100)
    scale: float = Field(ge=-10, le=10, strict=True)
    modelEpoch: str | None = Field(None, max_length=20)


class Parameters(Wire):
    """Training parameters. ``maxTrainSteps``, ``learningRate``, ``rank`` and ``seed`` drive
    the loraforge training; the others are recorded on the model and echoed back."""

    maxTrainSteps: Int | None = None
    learningRate: Float | None = None
    learningRateTextEncoder: Float | None = None
    learningRateUnet: Float | None = None
    batchSize: Int | None = None
    nbEpochs: Int | None = None
    nbRepeats: Int | None = None
    rank: Int | None = None
    seed: Int | None = None
    conceptPrompt: str | None = Field(None, max_length=1000)
    classPrompt: str | None = Field(None, max_length=1000)
    optimizeFor: Literal["likeness"] | None = None
    samplePrompts: list[str] | None = Field(None, max_length=20)
    sampleSourceImages: list[str] | None = Field(None, max_length=20)
    lrScheduler: (
        Literal[
            "constant", "constant-with-warmup", "cosine", "cosine-with-restarts", "linear",
            "polynomial",
        ]
        | None
    ) = None  # fmt: skip
    priorLossWeight: Float | None = None
    randomCrop: bool | None = None
    randomCropRatio: Float | None = None
    randomCropScale: Float | None = None
    scaleLr: bool | None = None
    textEncoderTrainingRatio: Float | None = None
    numTextTrainSteps: Int | None = None
    numUNetTrainSteps: Int | None = None
    validationFrequency: Int | None = None
    validationPrompt: str | None = Field(None, max_length=1000)


class ModelCreate(Wire):
    name: Name | None = None
    type: ModelType | None = None
    shortDescription: str | None = Field(None, max_length=2000)
    classSlug: str | None = Field(None, max_length=100)
    baseModelId: str | None = Field(None, max_length=100)
    collectionIds: list[str] | None = Field(None, max_length=100)
    concepts: list[Concept] | None = Field(None, max_length=20)


class ModelUpdate(Wire):
    name: Name | None = None
    type: ModelType | None = None
    shortDescription: str | None = Field(None, max_length=2000)
    classSlug: str | None = Field(None, max_length=100)
    concepts: list[Concept] | None = Field(None, max_length=20)
    epoch: str | None = Field(None, max_length=20)
    thumbnail: str | None = Field(None, max_length=100, description="An asset id.")
    promptEmbedding: str | None = Field(None, max_length=10_000)
    negativePromptEmbedding: str | None = Field(None, max_length=10_000)
    parameters: Parameters | None = None


class TrainingImageAdd(Wire):
    """One of: ``data`` (a data URL) with ``name``; ``assetId``; ``assetIds`` (up to 10)."""

    data: str | None = Field(None, description="data:image/...;base64,...")
    name: FileName | None = None
    assetId: str | None = Field(None, max_length=100)
    assetIds: list[str] | None = Field(None, min_length=1, max_length=10)
    preset: Literal["default", "style", "subject"] | None = None


class PairIn(Wire):
    sourceId: str | None = Field(None, max_length=100)
    targetId: str | None = Field(None, max_length=100)
    instruction: str | None = Field(None, max_length=2000)


class TrainTrigger(Wire):
    parameters: Parameters | None = None


class TrainAction(Wire):
    action: Literal["cancel"]


class AssetUpload(Wire):
    name: FileName
    image: str | None = Field(None, description="Base64 (or a data URL) of the image.")
    hide: bool | None = None
    collectionIds: list[str] | None = Field(None, max_length=100)
    parentId: str | None = Field(None, max_length=100)


# --- responses --------------------------------------------------------------------------


class Thumbnail(BaseModel):
    assetId: str
    url: str


class TrainingImage(BaseModel):
    id: str
    automaticCaptioning: str
    createdAt: str
    description: str
    downloadUrl: str
    name: str


class Pair(BaseModel):
    sourceId: str
    targetId: str
    instruction: str


class TrainingProgress(BaseModel):
    stage: Stage
    updatedAt: float = Field(description="Epoch milliseconds.")
    progress: float | None = None
    remainingTimeMs: float | None = None
    startedAt: float | None = None


class TrainingStats(BaseModel):
    startedAt: str | None = None
    endedAt: str | None = None
    queueDuration: float | None = None
    trainDuration: float | None = None


class ConceptOut(BaseModel):
    modelId: str
    scale: float
    modelEpoch: str | None = None


class Model(BaseModel):
    id: str
    capabilities: list[Literal["txt2img"]]
    collectionIds: list[str]
    createdAt: str
    custom: bool
    exampleAssetIds: list[str]
    privacy: Literal["private"]
    source: Literal["scenario"]
    status: ModelStatus
    tags: list[str]
    trainingImagesNumber: int
    type: ModelType
    updatedAt: str
    name: str | None = None
    shortDescription: str | None = None
    ownerId: str | None = None
    authorId: str | None = None
    jobId: str | None = None
    epoch: str | None = None
    concepts: list[ConceptOut] | None = None
    parameters: Parameters | None = None
    thumbnail: Thumbnail | None = None
    trainingImages: list[TrainingImage] | None = None
    trainingImagePairs: list[Pair] | None = None
    trainingProgress: TrainingProgress | None = None
    trainingStats: TrainingStats | None = None


class StatusChange(BaseModel):
    date: str
    status: JobStatus


class JobMetadata(BaseModel):
    input: dict[str, object] | None = None
    output: dict[str, object] | None = None
    error: str | None = None
    assetIds: list[str] | None = None
    outputModelId: str | None = None


class Job(BaseModel):
    jobId: str
    jobType: JobType
    createdAt: str
    updatedAt: str
    metadata: JobMetadata
    progress: float
    status: JobStatus
    statusHistory: list[StatusChange]
    authorId: str | None = None
    ownerId: str | None = None


class AssetMetadata(BaseModel):
    kind: Literal["image"]
    type: AssetSource
    name: str | None = None
    width: int | None = None
    height: int | None = None


class AssetProperties(BaseModel):
    size: int
    width: int | None = None
    height: int | None = None
    format: str | None = None


class Asset(BaseModel):
    id: str
    authorId: str
    collectionIds: list[str]
    createdAt: str
    editCapabilities: list[str]
    kind: Literal["image"]
    metadata: AssetMetadata
    mimeType: str
    ownerId: str
    privacy: Literal["private"]
    properties: AssetProperties
    source: AssetSource
    status: Literal["success"]
    tags: list[str]
    updatedAt: str
    url: str
    automaticCaptioning: str | None = None
    description: str | None = None


class ModelEnvelope(BaseModel):
    model: Model


class ModelPage(BaseModel):
    models: list[Model]
    nextPaginationToken: str | None


class TrainingImageEnvelope(BaseModel):
    trainingImage: TrainingImage
    trainingImages: list[TrainingImage] | None = Field(
        None, description="Every image added, for the batch `assetIds` form."
    )


class PairsEnvelope(BaseModel):
    count: int
    pairs: list[Pair]


class TrainEnvelope(BaseModel):
    job: Job
    model: Model


class JobEnvelope(BaseModel):
    job: Job


class AssetEnvelope(BaseModel):
    asset: Asset
