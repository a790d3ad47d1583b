"""What the ML adapters are asked to do: plain specs in, artifacts out. No torch here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from loraforge.domain.samples import SamplePlan


class ModelFamily(enum.StrEnum):
    SD15 = "sd15"
    SDXL = "sdxl"
    SD3 = "sd3"  # Stable Diffusion 3 / 3.5: StableDiffusion3Pipeline
    FLUX = "flux"  # FLUX.1 dev and schnell: FluxPipeline

    @property
    def flow_matching(self) -> bool:
        """A rectified-flow transformer (SD3, FLUX): trained on the flow-matching loss and
        sampled with its own flow-matching Euler scheduler only."""
        return self in (ModelFamily.SD3, ModelFamily.FLUX)

    @property
    def guidance_free(self) -> bool:
        """FLUX.1 dev and schnell are guidance-distilled: one pass per step and no classifier-
        free guidance, so there is nothing a negative prompt could steer away from."""
        return self is ModelFamily.FLUX


@dataclass(frozen=True)
class BaseModel:
    """A base model the operator configured (or the built-in ``tiny``).

    ``path`` is a diffusers folder or a single-file ``.safetensors`` checkpoint; ``None`` means
    the built-in tiny model shipped in the package.
    """

    name: str
    family: ModelFamily
    resolution: int  # native training/generation side in pixels
    path: Path | None = None
    description: str = ""

    @property
    def builtin(self) -> bool:
        """The built-in tiny model: its LoRAs load into nothing else."""
        return self.path is None


@dataclass(frozen=True)
class Hyperparameters:
    steps: int
    learning_rate: float
    rank: int
    resolution: int
    batch_size: int = 1
    checkpoint_every: int = 50
    seed: int = 0
    # Min-SNR loss weighting (Hang et al. 2023; the diffusers scripts' --snr_gamma): caps the
    # weight of nearly noise-free timesteps and, for v-prediction, of nearly pure-noise ones,
    # where a LoRA on ten pictures would otherwise memorise their exact layouts. None: plain MSE.
    snr_gamma: float | None = 5.0
    # Train on each picture and its mirror image (a coin per sample and step): for subjects
    # without a handedness. Off by default: text, logos and asymmetric faces would be flipped.
    flip_augment: bool = False

    @property
    def lora_alpha(self) -> int:
        """The LoRA's alpha: loraforge scales its LoRA by alpha / rank = 1, as diffusers reads a
        file that names no alpha (kohya files carry it as a tensor per layer)."""
        return self.rank


@dataclass(frozen=True)
class TrainingSample:
    image: bytes  # encoded image (the core's display variant: EXIF-correct, ≤ 2048 px)
    caption: str


@dataclass(frozen=True)
class TrainingSpec:
    base_model: BaseModel
    samples: list[TrainingSample]
    hyper: Hyperparameters
    # What the LoRA file says about itself (safetensors ``__metadata__``, ``domain.weights``).
    metadata: dict[str, str] = field(default_factory=dict)
    # When to render samples and keep checkpoints (None: never; trainings from before it).
    sampling: SamplePlan | None = None


@dataclass(frozen=True)
class TrainingProgress:
    step: int
    total_steps: int
    loss: float | None


@dataclass(frozen=True)
class LoraWeights:
    """One trained LoRA to mix into a generation with its scale."""

    name: str  # adapter name, unique within one request
    path: Path  # a .safetensors file as written by the trainer
    scale: float


@dataclass(frozen=True)
class GenerationSpec:
    base_model: BaseModel
    prompt: str
    seed: int
    width: int
    height: int
    num_images: int
    guidance_scale: float
    num_inference_steps: int
    output_format: str  # "jpeg" | "png"
    loras: list[LoraWeights] = field(default_factory=list)
    negative_prompt: str = ""
    scheduler: str | None = None  # one of SCHEDULERS; None: the base model's own
    init_image: bytes | None = None  # encoded picture: image-to-image from it
    mask_image: bytes | None = None  # encoded picture, white = repaint: inpainting
    strength: float = 0.75  # with init_image: how much is repainted (1: all)

    @property
    def render_size(self) -> tuple[int, int]:
        """The size the pipeline renders at (the result is resized to width x height)."""
        return render_size(self.base_model, self.width, self.height)


SCHEDULERS = ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc")
"""Sampler names a prediction may ask for (diffusers schedulers built from the base model's
scheduler config)."""


class PredictionInput(enum.StrEnum):
    """Optional prediction inputs; a base model supports some of them."""

    NEGATIVE_PROMPT = "negative_prompt"
    SCHEDULER = "scheduler"
    INIT_IMAGE = "init_image"
    MASK_IMAGE = "mask_image"
    REFERENCE_IMAGES = "reference_images"
    CONTROL = "control"


def supported_inputs(base: BaseModel) -> list[PredictionInput]:
    """What ``base`` can use: every family takes image-to-image and inpainting natively; SD 1.5
    and SDXL also any of the ``SCHEDULERS``, which flow-matching families (SD3, FLUX) cannot
    use (they sample with their own); all but guidance-free FLUX take a negative prompt (FLUX
    ignores one). Reference images need an IP-Adapter and control a ControlNet configured for
    the base model: none can be yet."""
    family = base.family
    return [
        *([] if family.guidance_free else [PredictionInput.NEGATIVE_PROMPT]),
        *([] if family.flow_matching else [PredictionInput.SCHEDULER]),
        PredictionInput.INIT_IMAGE,
        PredictionInput.MASK_IMAGE,
    ]


UPSCALE_FACTOR = 2
"""A request whose pixel count is at least this factor squared times the base model's native
area is rendered at the native area and upscaled (a model renders badly far above its size)."""


def render_size(base: BaseModel, width: int, height: int) -> tuple[int, int]:
    """Where ``width`` x ``height`` is at least ``UPSCALE_FACTOR`` times the native resolution
    (by area), the size of the native area with the same aspect ratio (sides multiples of 8);
    otherwise the requested size itself."""
    native = base.resolution
    if width * height < (UPSCALE_FACTOR * native) ** 2:
        return width, height
    ratio = width / height
    w = native * ratio**0.5
    h = native / ratio**0.5
    return max(8, round(w / 8) * 8), max(8, round(h / 8) * 8)


class TrainingStopped(Exception):
    """Raised by a trainer when ``should_stop`` asked it to stop (cancel or lost lease)."""
