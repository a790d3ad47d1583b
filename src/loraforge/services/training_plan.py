"""From the seed's two knobs to concrete hyperparameters (docs/training.md shows this table).

``trainingStrength`` 0-10: stronger means closer to the data, i.e. more optimisation (steps)
and a higher learning rate. ``trainingSpeed``: ``fast`` trains at a lower resolution with
fewer steps; ``high_quality`` at the base model's native resolution, with more steps and rank.
The flow-matching families (SD3, FLUX) have rows of their own (``FLOW_PROFILES``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from loraforge.domain.errors import InvalidInput
from loraforge.domain.ml import BaseModel, Hyperparameters, ModelFamily
from loraforge.domain.samples import SamplePlan
from loraforge.domain.work import DEFAULT_SIDE, TrainingSpeed


@dataclass(frozen=True)
class SpeedProfile:
    base_steps: int  # at strength 0
    steps_per_strength: int
    base_lr: float  # at strength 0
    lr_per_strength: float
    rank: int
    resolution_factor: float  # of the base model's native resolution
    checkpoint_every: int


PROFILES = {
    TrainingSpeed.FAST: SpeedProfile(
        base_steps=100,
        steps_per_strength=20,
        base_lr=5e-4,
        lr_per_strength=1e-4,
        rank=4,
        resolution_factor=0.5,
        checkpoint_every=50,
    ),
    TrainingSpeed.HIGH_QUALITY: SpeedProfile(
        base_steps=300,
        steps_per_strength=50,
        base_lr=2e-4,
        lr_per_strength=4e-5,
        rank=16,
        resolution_factor=1.0,
        checkpoint_every=100,
    ),
}


# SD3 and FLUX: the learning rate of diffusers' DreamBooth-LoRA scripts for them (1e-4; a
# transformer of billions of weights moves far per step at the SD rates), more steps to make up
# for it, rank 8 / 16, and the fast plan at half the native side (FLUX and SD 3.5 are 1,024 px
# models that still render 512 px well). The flow-matching loss has no Min-SNR weighting.
FLOW_PROFILES = {
    TrainingSpeed.FAST: SpeedProfile(
        base_steps=300,
        steps_per_strength=40,
        base_lr=1e-4,
        lr_per_strength=1e-5,
        rank=8,
        resolution_factor=0.5,
        checkpoint_every=100,
    ),
    TrainingSpeed.HIGH_QUALITY: SpeedProfile(
        base_steps=800,
        steps_per_strength=80,
        base_lr=8e-5,
        lr_per_strength=8e-6,
        rank=16,
        resolution_factor=1.0,
        checkpoint_every=200,
    ),
}


def profile_of(family: ModelFamily, speed: TrainingSpeed) -> SpeedProfile:
    return (FLOW_PROFILES if family.flow_matching else PROFILES)[speed]


def plan(base: BaseModel, *, strength: int, speed: TrainingSpeed, seed: int) -> Hyperparameters:
    if not 0 <= strength <= 10:
        raise InvalidInput("trainingStrength must be between 0 and 10.", field="trainingStrength")
    profile = profile_of(base.family, speed)
    resolution = max(64, int(base.resolution * profile.resolution_factor) // 8 * 8)
    return Hyperparameters(
        steps=profile.base_steps + profile.steps_per_strength * strength,
        learning_rate=profile.base_lr + profile.lr_per_strength * strength,
        rank=profile.rank,
        resolution=resolution,
        batch_size=1,
        checkpoint_every=profile.checkpoint_every,
        seed=seed,
        snr_gamma=None if base.family.flow_matching else Hyperparameters.snr_gamma,
    )


@dataclass(frozen=True)
class Overrides:
    """Hyperparameters a client chose itself (Scenario's ``parameters``, the native
    ``flipAugment``); None keeps the plan's."""

    steps: int | None = None
    learning_rate: float | None = None
    rank: int | None = None
    seed: int | None = None
    flip_augment: bool | None = None


MAX_STEPS = 10_000
MAX_RANK = 128
MAX_LEARNING_RATE = 0.01


def tune(hyper: Hyperparameters, overrides: Overrides) -> Hyperparameters:
    """The plan with the client's choices applied, each checked against a sane range."""
    checks = [
        ("steps", overrides.steps, 1, MAX_STEPS),
        ("learningRate", overrides.learning_rate, 1e-7, MAX_LEARNING_RATE),
        ("rank", overrides.rank, 1, MAX_RANK),
        ("seed", overrides.seed, 0, 2**31 - 1),
    ]
    for field, value, low, high in checks:
        if value is not None and not low <= value <= high:
            raise InvalidInput(f"{field} must be between {low} and {high}.", field=field)
    return replace(
        hyper,
        steps=overrides.steps or hyper.steps,
        learning_rate=overrides.learning_rate or hyper.learning_rate,
        rank=overrides.rank or hyper.rank,
        seed=hyper.seed if overrides.seed is None else overrides.seed,
        flip_augment=(
            hyper.flip_augment if overrides.flip_augment is None else overrides.flip_augment
        ),
        checkpoint_every=min(hyper.checkpoint_every, overrides.steps or hyper.steps),
    )


# --- samples and checkpoints while it trains (issue 13 §2) ------------------------------------

SAMPLE_ROUNDS = 4  # evenly through the training, the last at its final step
MAX_SAMPLE_PROMPTS = 4
MAX_SAMPLE_PROMPT_CHARS = 1000
DEFAULT_SAMPLE_PROMPT = "a photo of {trigger} {class}"


def sample_steps(total: int, rounds: int = SAMPLE_ROUNDS) -> tuple[int, ...]:
    """The steps after which samples are rendered: ``rounds`` of them evenly spaced, the last
    at ``total`` (fewer when the training has fewer steps)."""
    return tuple(sorted({max(1, round(total * n / rounds)) for n in range(1, rounds + 1)}))


def checked_sample_prompts(prompts: list[str] | None) -> list[str]:
    """The client's ``samplePrompts``: at most four, each 1 to 1,000 characters."""
    field = "samplePrompts"
    prompts = prompts or []
    if len(prompts) > MAX_SAMPLE_PROMPTS:
        raise InvalidInput(f"{field} may hold at most {MAX_SAMPLE_PROMPTS} prompts.", field=field)
    for prompt in prompts:
        if not 0 < len(prompt.strip()) <= MAX_SAMPLE_PROMPT_CHARS:
            raise InvalidInput(
                f"Each of {field} must be 1 to {MAX_SAMPLE_PROMPT_CHARS} characters.", field=field
            )
    return [p.strip() for p in prompts]


def sample_plan(
    hyper: Hyperparameters, *, prompts: list[str], max_checkpoints: int | None
) -> SamplePlan:
    """When to sample and which LoRAs to keep: every sample step but the last (the final
    weights) is a checkpoint, the latest ``max_checkpoints`` of them when capped. Samples
    render as a prediction with the default size and settings does, not at the training's
    resolution: a sample shows what a default prediction with that step's LoRA gives."""
    steps = sample_steps(hyper.steps)
    candidates = steps[:-1]
    kept = candidates if max_checkpoints is None else candidates[::-1][:max_checkpoints][::-1]
    return SamplePlan(
        steps=steps,
        prompts=tuple(prompts),
        seed=hyper.seed,
        checkpoint_steps=tuple(kept),
        resolution=DEFAULT_SIDE,
    )
