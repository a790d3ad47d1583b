"""The SDXL family (two text encoders, size/crop ids) on a tiny SDXL-shaped pipeline built from
configs here: it trains, and generates with its LoRA."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from loraforge.adapters.ml.device import pick_placement
from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.pipelines import load_pipeline
from loraforge.adapters.ml.trainer import DiffusersLoraTrainer, encode_samples
from loraforge.domain.ml import (
    BaseModel,
    GenerationSpec,
    LoraWeights,
    TrainingSample,
    TrainingSpec,
)
from tests.ml.conftest import LORA_HYPER, train
from tests.ml.pictures import TRIGGER, samples
from tests.ml.shaped import saved_xl, xl_unet


@pytest.fixture(scope="module")
def tiny_xl(tmp_path_factory: pytest.TempPathFactory) -> BaseModel:
    torch.manual_seed(0)
    unet = xl_unet(
        sample_size=8,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
    )
    return saved_xl(unet, tmp_path_factory.mktemp("tiny-xl"), name="tiny-xl")


def test_sdxl_trains_and_generates_with_its_lora(
    tiny_xl: BaseModel, trainer: DiffusersLoraTrainer, generator: DiffusersGenerator, tmp_path: Path
) -> None:
    hyper = replace(LORA_HYPER, steps=6, resolution=64, learning_rate=1e-2)
    spec = TrainingSpec(tiny_xl, samples(3, seed=6, size=64), hyper)
    lora, reports = train(trainer, spec, tmp_path)
    assert [r.step for r in reports] == list(range(1, 7))

    request = GenerationSpec(
        base_model=tiny_xl,
        prompt=f"{TRIGGER}, a square",
        seed=1,
        width=64,
        height=64,
        num_images=2,
        guidance_scale=5.0,
        num_inference_steps=3,
        output_format="png",
    )
    base = generator.generate(request)
    tuned = generator.generate(replace(request, loras=[LoraWeights("x", lora, 1.0)]))
    assert len(tuned) == 2
    assert tuned != base
    assert Image.open(io.BytesIO(tuned[0])).size == (64, 64)
    assert generator.generate(replace(request, loras=[LoraWeights("x", lora, 0.0)])) == base


def test_sdxl_trains_on_mixed_buckets_with_their_size_and_crop_ids(
    tiny_xl: BaseModel, trainer: DiffusersLoraTrainer, tmp_path: Path
) -> None:
    def shaped(sample: TrainingSample, size: tuple[int, int]) -> TrainingSample:
        buffer = io.BytesIO()
        with Image.open(io.BytesIO(sample.image)) as image:
            image.resize(size).save(buffer, format="PNG")
        return TrainingSample(buffer.getvalue(), sample.caption)

    base = samples(3, seed=8, size=128)
    mixed = [shaped(base[0], (256, 128)), shaped(base[1], (96, 192)), base[2]]
    hyper = replace(LORA_HYPER, steps=4, resolution=128, learning_rate=1e-2)
    data = encode_samples(load_pipeline(tiny_xl, pick_placement()), mixed, resolution=128)
    assert data.buckets == ["128x64", "64x128", "128x128"]
    assert data.added_cond is not None
    # (height, width) as scaled, the window's top-left, the bucket: what SDXL reads.
    assert data.added_cond["time_ids"].tolist() == [
        [64, 128, 0, 0, 64, 128],
        [128, 64, 0, 0, 128, 64],
        [128, 128, 0, 0, 128, 128],
    ]
    _, reports = train(trainer, TrainingSpec(tiny_xl, mixed, hyper), tmp_path)
    assert [r.step for r in reports] == [1, 2, 3, 4]
