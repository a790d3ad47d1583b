"""LoRA training on the tiny model: it learns, stops, resumes, and its file loads in diffusers."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline
from PIL import Image
from safetensors.torch import load_file

from loraforge.adapters.ml.device import pick_placement
from loraforge.adapters.ml.pipelines import Pipeline, load_pipeline
from loraforge.adapters.ml.registry import TINY
from loraforge.adapters.ml.tiny import WEIGHTS_DIR
from loraforge.adapters.ml.trainer import (
    FINAL_NAME,
    DiffusersLoraTrainer,
    batch_indices,
    decode_to_bucket,
    denoising_loss,
    encode_samples,
    epoch_batches,
    min_snr_weights,
)
from loraforge.domain.ml import TrainingProgress, TrainingSample, TrainingSpec, TrainingStopped
from tests.ml.conftest import LORA_HYPER, train
from tests.ml.pictures import samples

EVAL_TIMESTEPS = (50, 200, 350, 500, 650, 800)
# One noise draw per picture and timestep made the loss swing by more than what a LoRA changes
# (±0.05 at single timesteps against a ~0.02 mean gain); eight draws average that out.
NOISE_DRAWS = 8


def heldout_loss(pipe: Pipeline, held_out: list[TrainingSample]) -> float:
    """Denoising loss on pictures never trained on, with fixed noise and timesteps."""
    data = encode_samples(pipe, held_out, resolution=LORA_HYPER.resolution)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    picks = list(range(len(held_out)))
    losses = []
    with torch.no_grad():
        for t in EVAL_TIMESTEPS:
            generator = torch.Generator().manual_seed(1000 + t)
            timesteps = torch.full((len(picks),), t)
            for _ in range(NOISE_DRAWS):
                losses.append(
                    denoising_loss(pipe.unet, scheduler, data, picks, generator, timesteps)
                )
    return float(torch.stack(losses).mean())


def test_training_lowers_the_loss_on_new_pictures_of_its_kind(red_lora: Path) -> None:
    like = samples(6, seed=11, shape="square", colour="red", pattern="striped")
    unlike = samples(6, seed=12, shape="circle", colour="blue", pattern="plain")
    pipe = load_pipeline(TINY, pick_placement())
    base_like, base_unlike = heldout_loss(pipe, like), heldout_loss(pipe, unlike)
    pipe.load_lora_weights(str(red_lora), adapter_name="red")
    tuned_like, tuned_unlike = heldout_loss(pipe, like), heldout_loss(pipe, unlike)

    assert tuned_like < base_like
    assert base_like - tuned_like > base_unlike - tuned_unlike


def test_the_lora_file_loads_into_a_stock_pipeline_and_changes_it(red_lora: Path) -> None:
    pipe = StableDiffusionPipeline.from_pretrained(str(WEIGHTS_DIR), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)

    def picture() -> torch.Tensor:
        generator = torch.Generator().manual_seed(3)
        out = pipe(
            "FJA90AB, a square",
            height=128,
            width=128,
            num_inference_steps=4,
            generator=generator,
            output_type="pt",
        )
        image: torch.Tensor = out.images[0]
        return image

    before = picture()
    pipe.load_lora_weights(str(red_lora))
    assert (picture() - before).abs().mean() > 1e-3


def test_progress_is_reported_every_step_and_the_weights_are_in_workdir(
    trainer: DiffusersLoraTrainer, tmp_path: Path
) -> None:
    spec = TrainingSpec(TINY, samples(2, seed=3), replace(LORA_HYPER, steps=3))
    path, reports = train(trainer, spec, tmp_path)
    assert path == tmp_path / FINAL_NAME
    assert [(r.step, r.total_steps) for r in reports] == [(1, 3), (2, 3), (3, 3)]
    assert all(r.loss is not None and r.loss > 0 for r in reports)
    assert list(tmp_path.glob("checkpoint-*")) == []


def test_stopping_raises_and_leaves_no_weights(
    trainer: DiffusersLoraTrainer, tmp_path: Path
) -> None:
    spec = TrainingSpec(TINY, samples(2, seed=3), replace(LORA_HYPER, steps=20))
    reports: list[TrainingProgress] = []
    with pytest.raises(TrainingStopped):
        trainer.train(
            spec, workdir=tmp_path, report=reports.append, should_stop=lambda: len(reports) >= 3
        )
    assert [r.step for r in reports] == [1, 2, 3]
    assert not (tmp_path / FINAL_NAME).exists()


def test_a_stopped_training_resumes_from_its_checkpoint_and_ends_as_if_never_stopped(
    trainer: DiffusersLoraTrainer, tmp_path: Path
) -> None:
    spec = TrainingSpec(TINY, samples(3, seed=4), replace(LORA_HYPER, steps=8, checkpoint_every=4))
    first: list[TrainingProgress] = []
    with pytest.raises(TrainingStopped):
        trainer.train(
            spec, workdir=tmp_path / "w", report=first.append, should_stop=lambda: len(first) >= 6
        )
    assert [p.name for p in (tmp_path / "w").glob("checkpoint-*")] == ["checkpoint-0000004.pt"]

    resumed, second = train(trainer, spec, tmp_path / "w")
    assert [r.step for r in second] == [5, 6, 7, 8]
    straight, _ = train(trainer, spec, tmp_path / "straight")
    a, b = load_file(resumed), load_file(straight)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_checkpoint_of_another_spec_is_ignored(
    trainer: DiffusersLoraTrainer, tmp_path: Path
) -> None:
    spec = TrainingSpec(TINY, samples(2, seed=5), replace(LORA_HYPER, steps=4, checkpoint_every=2))
    stopped: list[TrainingProgress] = []
    with pytest.raises(TrainingStopped):
        trainer.train(
            spec, workdir=tmp_path, report=stopped.append, should_stop=lambda: len(stopped) >= 3
        )
    other = replace(spec, hyper=replace(spec.hyper, seed=8))
    _, reports = train(trainer, other, tmp_path)
    assert [r.step for r in reports] == [1, 2, 3, 4]


def test_pictures_are_scaled_to_their_bucket_with_transparency_on_white() -> None:
    image = Image.new("RGBA", (300, 100), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (140, 0, 160, 100))  # an opaque red bar in the middle
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    pixels, how = decode_to_bucket(buffer.getvalue(), 64)
    assert pixels.shape == (3, 64, 64)  # at 64 px the only bucket is square
    assert str(how.bucket) == "64x64"
    assert torch.allclose(pixels[:, 32, 32], torch.tensor([1.0, -1.0, -1.0]), atol=0.02)
    assert torch.allclose(pixels[:, 32, 1], torch.tensor([1.0, 1.0, 1.0]), atol=0.02)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_subject_at_the_edge_of_a_wide_picture_stays_in_what_the_trainer_sees() -> None:
    picture = Image.new("RGB", (400, 200), "white")
    picture.paste((255, 0, 0), (4, 60, 60, 140))  # the subject, against the left edge
    pixels, how = decode_to_bucket(_png(picture), 128)
    assert pixels.shape == (3, 64, 128)
    assert str(how.bucket) == "128x64"
    red = (pixels[0] > 0.5) & (pixels[1] < -0.5) & (pixels[2] < -0.5)
    assert int(red.sum()) > 100  # ~14x26 px of subject after scaling to 128x64
    # What a centre square (the trainer's former crop) keeps has none of it.
    square = picture.crop((100, 0, 300, 200))
    assert (255, 0, 0) not in {pixel for _, pixel in square.getcolors(maxcolors=1 << 16) or []}


def test_every_batch_comes_from_one_bucket_and_every_sample_is_seen_once_per_epoch() -> None:
    buckets = ["128x64", "128x128", "64x128", "128x128", "128x64", "128x128", "128x128"]
    batches = epoch_batches(buckets, 2, epoch=3, seed=9)
    assert sorted(i for batch in batches for i in batch) == list(range(len(buckets)))
    assert all(len({buckets[i] for i in batch}) == 1 for batch in batches)
    assert len(batches) == 4  # 128x64: 2 samples, 1 batch; 128x128: 4, 2; 64x128: 1, 1
    steps = [batch_indices(buckets, 2, step=step, seed=9) for step in range(12, 16)]
    assert steps == batches  # epoch 3 is steps 12..15
    assert epoch_batches(buckets, 2, epoch=4, seed=9) != batches  # reshuffled every epoch


def _shaped(sample: TrainingSample, size: tuple[int, int]) -> TrainingSample:
    with Image.open(io.BytesIO(sample.image)) as image:
        return TrainingSample(_png(image.resize(size)), sample.caption)


def test_a_training_with_mixed_buckets_and_flips_runs_and_flips_change_it(
    trainer: DiffusersLoraTrainer, tmp_path: Path
) -> None:
    base = samples(4, seed=13)
    mixed = [
        _shaped(base[0], (256, 128)),
        _shaped(base[1], (128, 256)),
        _shaped(base[2], (160, 160)),
        _shaped(base[3], (300, 150)),
    ]
    hyper = replace(LORA_HYPER, steps=4, batch_size=2)
    data = encode_samples(load_pipeline(TINY, pick_placement()), mixed, resolution=128)
    assert data.buckets == ["128x64", "64x128", "128x128", "128x64"]
    assert [tuple(m.shape[1:]) for m in data.latent_mean][:3] == [(8, 16), (16, 8), (16, 16)]
    plain, reports = train(trainer, TrainingSpec(TINY, mixed, hyper), tmp_path / "plain")
    assert [r.step for r in reports] == [1, 2, 3, 4]
    flipped_spec = TrainingSpec(TINY, mixed, replace(hyper, flip_augment=True))
    flipped, _ = train(trainer, flipped_spec, tmp_path / "flipped")
    a, b = load_file(plain), load_file(flipped)
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[key], b[key]) for key in a)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_min_snr_weights_cap_the_weight_of_easy_timesteps(prediction_type: str) -> None:
    scheduler = DDPMScheduler(prediction_type=prediction_type)
    timesteps = torch.tensor([0, 100, 500, 999])
    snr = scheduler.alphas_cumprod[timesteps] / (1 - scheduler.alphas_cumprod[timesteps])
    weights = min_snr_weights(scheduler, timesteps, gamma=5.0)

    # In epsilon terms the Min-SNR weight is min(SNR, gamma) / SNR: 1 where SNR <= gamma,
    # smaller where the picture is nearly clean. A v target's squared error is (SNR + 1)/SNR
    # times the noise target's for the same prediction, so its weight is divided by SNR + 1.
    capped = snr.clamp(max=5.0)
    expected = capped / (snr + 1) if prediction_type == "v_prediction" else capped / snr
    torch.testing.assert_close(weights, expected)
    assert snr[0] > 5 > snr[-1]
    assert weights[0] < 0.01  # t = 0 is nearly noise-free: its error barely counts
