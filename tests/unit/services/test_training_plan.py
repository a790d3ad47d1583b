"""The training plan: from trainingStrength and trainingSpeed to hyperparameters, and a
client's own choices (Scenario ``parameters``) checked and applied on top."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from loraforge.api.schemas.work import PredictionCreate
from loraforge.domain.errors import InvalidInput
from loraforge.domain.ml import BaseModel, Hyperparameters, ModelFamily
from loraforge.domain.work import TrainingSpeed
from loraforge.services.training_plan import (
    MAX_LEARNING_RATE,
    MAX_RANK,
    MAX_STEPS,
    Overrides,
    plan,
    sample_plan,
    tune,
)

FAST, HIGH_QUALITY = TrainingSpeed.FAST, TrainingSpeed.HIGH_QUALITY


def base(resolution: int = 512) -> BaseModel:
    return BaseModel(name="sd15", family=ModelFamily.SD15, resolution=resolution)


def test_fast_at_strength_0_is_the_shortest_plan() -> None:
    assert plan(base(), strength=0, speed=FAST, seed=7) == Hyperparameters(
        steps=100,
        learning_rate=5e-4,
        rank=4,
        resolution=256,
        batch_size=1,
        checkpoint_every=50,
        seed=7,
    )


def test_high_quality_at_strength_10_is_the_longest_plan() -> None:
    hyper = plan(base(), strength=10, speed=HIGH_QUALITY, seed=0)

    assert (hyper.steps, hyper.rank, hyper.resolution, hyper.checkpoint_every) == (
        800,
        16,
        512,
        100,
    )
    assert hyper.learning_rate == pytest.approx(6e-4)


@pytest.mark.parametrize("speed", list(TrainingSpeed))
def test_more_strength_means_more_steps_and_a_higher_learning_rate(speed: TrainingSpeed) -> None:
    plans = [plan(base(), strength=s, speed=speed, seed=0) for s in range(11)]

    for weaker, stronger in itertools.pairwise(plans):
        assert stronger.steps > weaker.steps
        assert stronger.learning_rate > weaker.learning_rate
        assert (stronger.rank, stronger.resolution) == (weaker.rank, weaker.resolution)


def test_high_quality_trains_more_than_fast_at_every_strength() -> None:
    for strength in range(11):
        fast = plan(base(), strength=strength, speed=FAST, seed=0)
        high = plan(base(), strength=strength, speed=HIGH_QUALITY, seed=0)
        assert high.steps > fast.steps
        assert high.rank > fast.rank
        assert high.resolution > fast.resolution


@pytest.mark.parametrize(
    ("native", "speed", "resolution"),
    [
        (1024, FAST, 512),
        (1024, HIGH_QUALITY, 1024),
        (770, HIGH_QUALITY, 768),  # a multiple of 8 (the VAE's downsampling)
        (100, HIGH_QUALITY, 96),
        (100, FAST, 64),  # never under 64
        (64, FAST, 64),
    ],
)
def test_resolution_follows_the_base_model(
    native: int, speed: TrainingSpeed, resolution: int
) -> None:
    assert plan(base(native), strength=0, speed=speed, seed=0).resolution == resolution


@pytest.mark.parametrize("strength", [-1, 11])
def test_strength_outside_0_to_10_is_refused(strength: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        plan(base(), strength=strength, speed=FAST, seed=0)
    assert caught.value.field == "trainingStrength"


def test_tune_without_overrides_keeps_the_plan() -> None:
    hyper = plan(base(), strength=3, speed=HIGH_QUALITY, seed=11)

    assert tune(hyper, Overrides()) == hyper


def test_tune_applies_every_choice() -> None:
    hyper = plan(base(), strength=3, speed=FAST, seed=11)

    tuned = tune(hyper, Overrides(steps=500, learning_rate=1e-3, rank=32, seed=0))

    assert tuned == dataclasses.replace(
        hyper,
        steps=500,
        learning_rate=1e-3,
        rank=32,
        seed=0,  # seed 0 is a choice too
    )


def test_fewer_steps_than_a_checkpoint_interval_checkpoint_at_the_end() -> None:
    hyper = plan(base(), strength=0, speed=FAST, seed=0)

    assert tune(hyper, Overrides(steps=30)).checkpoint_every == 30
    assert tune(hyper, Overrides(steps=80)).checkpoint_every == hyper.checkpoint_every


@pytest.mark.parametrize("speed", [FAST, HIGH_QUALITY])
def test_samples_render_as_a_default_prediction(speed: TrainingSpeed) -> None:
    """At a default prediction's size, steps and guidance, not at the training's resolution:
    a sample shows what a prediction with that step's LoRA gives."""
    hyper = plan(base(256), strength=5, speed=speed, seed=3)
    sampling = sample_plan(hyper, prompts=["a photo of sks"], max_checkpoints=None)
    config = {"scale": 1, "modelId": "m", "trainingId": "t"}
    default = PredictionCreate.model_validate({"scaleConfigs": {"a": config}, "prompt": "p"})

    assert (sampling.resolution, sampling.resolution) == (
        default.image_size.width,
        default.image_size.height,
    )
    assert sampling.inference_steps == default.num_inference_steps
    assert sampling.guidance_scale == default.guidance_scale
    assert default.scheduler is None  # both: the base model's own


@pytest.mark.parametrize(
    "overrides",
    [
        Overrides(steps=1),
        Overrides(steps=MAX_STEPS),
        Overrides(learning_rate=1e-7),
        Overrides(learning_rate=MAX_LEARNING_RATE),
        Overrides(rank=1),
        Overrides(rank=MAX_RANK),
        Overrides(seed=2**31 - 1),
    ],
)
def test_choices_at_the_limits_are_accepted(overrides: Overrides) -> None:
    tuned = tune(plan(base(), strength=0, speed=FAST, seed=0), overrides)

    chosen = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    assert {k: getattr(tuned, k) for k in chosen} == chosen


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (Overrides(steps=0), "steps"),
        (Overrides(steps=MAX_STEPS + 1), "steps"),
        (Overrides(learning_rate=0.0), "learningRate"),
        (Overrides(learning_rate=MAX_LEARNING_RATE * 2), "learningRate"),
        (Overrides(rank=0), "rank"),
        (Overrides(rank=MAX_RANK + 1), "rank"),
        (Overrides(seed=-1), "seed"),
        (Overrides(seed=2**31), "seed"),
    ],
)
def test_choices_out_of_range_are_refused_by_name(overrides: Overrides, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        tune(plan(base(), strength=0, speed=FAST, seed=0), overrides)
    assert caught.value.field == field
    assert field in caught.value.message


@pytest.mark.parametrize("family", [ModelFamily.SD3, ModelFamily.FLUX])
def test_flow_matching_families_have_rows_of_their_own(family: ModelFamily) -> None:
    flow = BaseModel(name="m", family=family, resolution=1024)
    fast = plan(flow, strength=0, speed=FAST, seed=1)
    assert (fast.steps, fast.learning_rate, fast.rank, fast.resolution) == (300, 1e-4, 8, 512)
    assert fast.snr_gamma is None  # Min-SNR weights the DDPM loss, not flow matching
    best = plan(flow, strength=10, speed=HIGH_QUALITY, seed=1)
    assert (best.steps, best.rank, best.resolution) == (1600, 16, 1024)
    assert plan(base(1024), strength=0, speed=FAST, seed=1).snr_gamma == 5.0
