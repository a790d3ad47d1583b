"""Samples and checkpoints while the real trainer trains the tiny model (issue 13 §2)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

from loraforge.adapters.ml.device import pick_placement
from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.pipelines import load_pipeline
from loraforge.adapters.ml.registry import TINY
from loraforge.adapters.ml.trainer import DiffusersLoraTrainer, render_samples
from loraforge.domain.ml import (
    GenerationSpec,
    Hyperparameters,
    LoraWeights,
    TrainingProgress,
    TrainingSpec,
)
from loraforge.domain.samples import SamplePlan, SampleRound
from loraforge.domain.work import DEFAULT_SIDE
from tests.ml.pictures import samples

HYPER = Hyperparameters(
    steps=8, learning_rate=2e-3, rank=4, resolution=64, checkpoint_every=1000, seed=3
)
PLAN = SamplePlan(
    steps=(4, 8),
    prompts=("a photo of FJA90AB", "FJA90AB, a square"),
    seed=5,
    checkpoint_steps=(4,),
    resolution=64,
    inference_steps=3,
)


def _train(
    trainer: DiffusersLoraTrainer, workdir: Path, plan: SamplePlan = PLAN
) -> tuple[Path, list[SampleRound]]:
    spec = TrainingSpec(
        TINY,
        samples(2, seed=1, shape="square", colour="red", pattern="striped"),
        HYPER,
        metadata={"ss_steps": "8"},
        sampling=plan,
    )
    rounds: list[SampleRound] = []
    reports: list[TrainingProgress] = []

    def keep(sampled: SampleRound) -> None:
        # The trainer may remove its files later: read them now.
        rounds.append(sampled)
        if sampled.checkpoint is not None:
            copy = workdir.parent / f"kept-{sampled.step}.safetensors"
            copy.write_bytes(sampled.checkpoint.read_bytes())

    final = trainer.train(
        spec, workdir=workdir, report=reports.append, should_stop=lambda: False, on_sample=keep
    )
    assert [r.step for r in reports] == list(range(1, HYPER.steps + 1))
    return final, rounds


def test_samples_at_plan_steps_with_fixed_seeds_and_a_checkpoint(tmp_path: Path) -> None:
    trainer = DiffusersLoraTrainer()
    final, rounds = _train(trainer, tmp_path / "run")

    assert [r.step for r in rounds] == [4, 8]
    for sampled in rounds:
        assert [(s.position, s.prompt, s.seed) for s in sampled.samples] == [
            (0, "a photo of FJA90AB", 5),
            (1, "FJA90AB, a square", 6),
        ]
        for s in sampled.samples:
            with Image.open(io.BytesIO(s.image)) as image:
                assert (image.format, image.size) == ("PNG", (64, 64))
    # The LoRA changed between the rounds, so did the pictures of the same prompt and seed.
    assert rounds[0].samples[0].image != rounds[1].samples[0].image
    # Only step 4 is a checkpoint: the final step's LoRA is the final file.
    assert rounds[0].checkpoint is not None
    assert rounds[1].checkpoint is None
    kept = load_file(str(tmp_path / "kept-4.safetensors"))
    last = load_file(str(final))
    assert kept.keys() == last.keys()
    assert any(not torch.equal(kept[k], last[k]) for k in kept)


def test_a_sample_is_the_prediction_with_the_weights_of_its_step(
    tmp_path: Path, generator: DiffusersGenerator
) -> None:
    """The same bytes as the generator gives with the checkpoint of that step (the final
    weights at the last step) for the sample's prompt and seed at the plan's size and settings
    and the base model's scheduler. At a default prediction's size the tiny model renders at
    its native side and upscales, as predictions do: the samples do the same."""
    plan = replace(PLAN, prompts=("a photo of FJA90AB",), resolution=DEFAULT_SIDE)
    final, rounds = _train(DiffusersLoraTrainer(), tmp_path / "run", plan)

    weights = {4: tmp_path / "kept-4.safetensors", 8: final}
    for sampled in rounds:
        [sample] = sampled.samples
        spec = GenerationSpec(
            TINY,
            sample.prompt,
            sample.seed,
            width=DEFAULT_SIDE,
            height=DEFAULT_SIDE,
            num_images=1,
            guidance_scale=plan.guidance_scale,
            num_inference_steps=plan.inference_steps,
            output_format="png",
            loras=[LoraWeights("lora", weights[sampled.step], 1.0)],
        )
        assert generator.generate(spec) == [sample.image], f"step {sampled.step}"
    assert rounds[0].samples[0].image != rounds[1].samples[0].image


def test_sampling_leaves_training_as_it_was(tmp_path: Path) -> None:
    """The same training with and without samples ends with the same weights: rendering takes
    no gradient, touches no training RNG, and puts the UNet back in training mode."""
    trainer = DiffusersLoraTrainer()
    with_samples, _ = _train(trainer, tmp_path / "a")
    spec = TrainingSpec(
        TINY,
        samples(2, seed=1, shape="square", colour="red", pattern="striped"),
        HYPER,
        metadata={"ss_steps": "8"},
    )
    without = trainer.train(
        spec, workdir=tmp_path / "b", report=lambda _: None, should_stop=lambda: False
    )
    a, b = load_file(str(with_samples)), load_file(str(without))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_render_samples_restores_the_mode_and_repeats_itself() -> None:
    pipe = load_pipeline(TINY, pick_placement())
    pipe.unet.train()
    plan = replace(PLAN, prompts=("a square",))
    first = render_samples(pipe, TINY, plan)
    assert pipe.unet.training
    assert render_samples(pipe, TINY, plan)[0].image == first[0].image
