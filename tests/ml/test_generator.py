"""Generation on the tiny model: reproducible bytes, LoRA scales and mixes, adapter cache."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.registry import TINY
from loraforge.domain.ml import GenerationSpec, LoraWeights
from tests.ml.pictures import TRIGGER

SPEC = GenerationSpec(
    base_model=TINY,
    prompt=f"{TRIGGER}, a square",
    seed=42,
    width=128,
    height=128,
    num_images=1,
    guidance_scale=5.0,
    num_inference_steps=6,
    output_format="png",
)


def with_loras(*loras: tuple[Path, float]) -> GenerationSpec:
    return replace(
        SPEC, loras=[LoraWeights(f"m{i}", path, scale) for i, (path, scale) in enumerate(loras)]
    )


def test_the_same_spec_and_seed_give_the_same_bytes(
    generator: DiffusersGenerator, red_lora: Path
) -> None:
    spec = replace(with_loras((red_lora, 0.8)), num_images=2, width=136, height=96)
    first = generator.generate(spec)
    assert generator.generate(spec) == first
    assert len(first) == 2
    assert first[0] != first[1]
    assert Image.open(io.BytesIO(first[0])).size == (136, 96)
    assert generator.generate(replace(spec, seed=43)) != first


def test_jpeg_output_is_reproducible_too(generator: DiffusersGenerator) -> None:
    spec = replace(SPEC, output_format="jpeg")
    data = generator.generate(spec)
    assert data[0][:3] == b"\xff\xd8\xff"
    assert generator.generate(spec) == data


def test_scale_zero_reproduces_the_base_exactly(
    generator: DiffusersGenerator, red_lora: Path
) -> None:
    base = generator.generate(SPEC)
    assert generator.generate(with_loras((red_lora, 1.0))) != base  # the adapter is now loaded
    assert generator.generate(with_loras((red_lora, 0.0))) == base
    assert generator.generate(SPEC) == base


def test_a_mix_differs_from_either_lora_alone(
    generator: DiffusersGenerator, red_lora: Path, blue_lora: Path
) -> None:
    red = generator.generate(with_loras((red_lora, 1.0)))
    blue = generator.generate(with_loras((blue_lora, 1.0)))
    mix = generator.generate(with_loras((red_lora, 0.7), (blue_lora, 0.7)))
    assert len({red[0], blue[0], mix[0]}) == 3
    assert generator.generate(with_loras((red_lora, 1.0))) == red  # swapping back is exact


def test_least_recently_used_adapters_are_evicted(red_lora: Path, blue_lora: Path) -> None:
    small = DiffusersGenerator(max_adapters=1)
    red = small.generate(with_loras((red_lora, 1.0)))
    small.generate(with_loras((blue_lora, 1.0)))
    both = small.generate(with_loras((red_lora, 0.5), (blue_lora, 0.5)))  # more than it holds
    assert small.generate(with_loras((red_lora, 1.0))) == red
    assert both != red


def test_sizes_must_be_multiples_of_eight(generator: DiffusersGenerator) -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        generator.generate(replace(SPEC, width=130))


def test_forget_unloads_the_adapters_of_deleted_files(
    red_lora: Path, blue_lora: Path, tmp_path: Path
) -> None:
    own = DiffusersGenerator()
    erased, kept = tmp_path / "tr-erased.safetensors", tmp_path / "tr-kept.safetensors"
    shutil.copy(red_lora, erased)
    shutil.copy(blue_lora, kept)
    own.generate(with_loras((erased, 0.6), (kept, 0.6)))
    (resident,) = own._residents.values()  # what the pipeline holds: not observable otherwise
    assert len(resident.adapters) == 2

    erased.unlink()
    own.forget([erased])

    assert [key.split("|")[0] for key in resident.adapters] == [str(kept.resolve())]
    assert resident.pipe is not None
    assert set(resident.pipe.get_list_adapters()["unet"]) == set(resident.adapters.values())


def test_forget_during_a_generation_unloads_when_it_ends(red_lora: Path, tmp_path: Path) -> None:
    own = DiffusersGenerator()
    copy = tmp_path / "tr-1.safetensors"
    shutil.copy(red_lora, copy)
    own.generate(with_loras((copy, 1.0)))
    (resident,) = own._residents.values()

    with resident.lock:  # a generation is running
        own.forget([copy])  # returns at once
        assert len(resident.adapters) == 1
    own.generate(SPEC)  # the next generation's end

    assert not resident.adapters
