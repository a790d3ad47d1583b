"""A trained LoRA in kohya names: stock diffusers reads it into the same pixels as the
diffusers file; every kohya key names a layer of the original LDM UNet; fp16 loads too.

On the tiny model and on tiny pipelines in SD 1.5's and SDXL's block layouts (``shaped``),
each with a LoRA the real trainer wrote. The LDM layer names come from diffusers' original-SD
conversion map (``ldm_layout``), checked here against diffusers' own LDM conversion first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from safetensors.torch import load_file

from loraforge.adapters.ml.lora_files import SafetensorsLoraFiles, read_metadata
from loraforge.adapters.ml.pipelines import Pipeline, pipeline_class
from loraforge.adapters.ml.registry import TINY
from loraforge.adapters.ml.tiny import WEIGHTS_DIR
from loraforge.adapters.ml.trainer import TARGET_MODULES, DiffusersLoraTrainer
from loraforge.domain.ml import BaseModel, TrainingSpec
from loraforge.domain.weights import WeightsDtype, WeightsFormat
from tests.ml.conftest import LORA_HYPER, train
from tests.ml.ldm_layout import ldm_name, ldm_state_dict
from tests.ml.pictures import TRIGGER, samples
from tests.ml.shaped import sd15_shaped, sdxl_shaped

FILES = SafetensorsLoraFiles()
METADATA = {"modelspec.title": "shapes", "loraforge.training_id": "tr-1"}


@dataclass(frozen=True)
class Trained:
    base: BaseModel
    lora: Path  # as the trainer wrote it: diffusers names, fp32
    side: int  # the pictures' side to render at

    @property
    def folder(self) -> Path:
        return self.base.path or WEIGHTS_DIR

    def pipeline(self) -> Pipeline:
        cls = pipeline_class(self.base.family)
        options: dict[str, Any] = {"dtype": torch.float32, "local_files_only": True}
        if cls is StableDiffusionPipeline:
            options |= {"safety_checker": None, "requires_safety_checker": False}
        pipe = cls.from_pretrained(str(self.folder), **options)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def convert(self, dtype: WeightsDtype, to: Path) -> Path:
        converted = FILES.convert(
            self.lora.read_bytes(),
            weights_format=WeightsFormat.KOHYA,
            dtype=dtype,
            family=self.base.family,
            metadata=METADATA,
        )
        to.write_bytes(converted)
        return to


def trained_on(
    base: BaseModel, trainer: DiffusersLoraTrainer, workdir: Path, *, side: int = 64
) -> Trained:
    hyper = replace(LORA_HYPER, steps=4, resolution=64, learning_rate=1e-2)
    spec = TrainingSpec(base, samples(3, seed=21, size=64), hyper, metadata=METADATA)
    return Trained(base, train(trainer, spec, workdir)[0], side)


@pytest.fixture(scope="module")
def on_sd15(trainer: DiffusersLoraTrainer, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    base = sd15_shaped(tmp_path_factory.mktemp("sd15-shaped"))
    return trained_on(base, trainer, tmp_path_factory.mktemp("sd15-lora"))


@pytest.fixture(scope="module")
def on_sdxl(trainer: DiffusersLoraTrainer, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    base = sdxl_shaped(tmp_path_factory.mktemp("sdxl-shaped"))
    return trained_on(base, trainer, tmp_path_factory.mktemp("sdxl-lora"))


@pytest.fixture(scope="module")
def on_tiny(red_lora: Path) -> Trained:
    return Trained(TINY, red_lora, 128)


@pytest.fixture(params=["tiny", "sd15", "sdxl"])
def lora(request: pytest.FixtureRequest) -> Trained:
    trained: Trained = request.getfixturevalue(f"on_{request.param}")
    return trained


def render(pipe: Pipeline, side: int) -> torch.Tensor:
    out = pipe(
        f"{TRIGGER}, a square",
        height=side,
        width=side,
        num_inference_steps=3,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(3),
        output_type="pt",
    )
    image: torch.Tensor = out.images
    return image


def with_lora(pipe: Pipeline, path: Path, side: int) -> torch.Tensor:
    """Pixels with the LoRA file loaded the stock way. diffusers maps LDM block numbers to its
    own for kohya files with the UNet's config: its SDXL loader passes that itself, its SD 1.5
    loader only when asked (kohya's own SD 1.5 files use diffusers' block names)."""
    extra: dict[str, Any] = {}
    if not isinstance(pipe, StableDiffusionXLPipeline):
        extra["unet_config"] = pipe.unet.config
    pipe.load_lora_weights(str(path), adapter_name="lora", **extra)
    try:
        return render(pipe, side)
    finally:
        pipe.unload_lora_weights()


def test_the_kohya_file_gives_the_same_pixels_as_the_diffusers_file(
    lora: Trained, tmp_path: Path
) -> None:
    pipe = lora.pipeline()
    base = render(pipe, lora.side)
    diffusers = with_lora(pipe, lora.lora, lora.side)
    kohya = with_lora(pipe, lora.convert(WeightsDtype.FP32, tmp_path / "k.safetensors"), lora.side)
    assert not torch.equal(diffusers, base)  # the LoRA changes the pictures …
    assert torch.equal(kohya, diffusers)  # … and both files change them alike


def test_the_fp16_kohya_file_holds_fp16_tensors_and_loads(lora: Trained, tmp_path: Path) -> None:
    path = lora.convert(WeightsDtype.FP16, tmp_path / "k16.safetensors")
    assert {t.dtype for t in load_file(path).values()} == {torch.float16}
    pipe = lora.pipeline()
    base = render(pipe, lora.side)
    full = with_lora(pipe, lora.lora, lora.side)
    half = with_lora(pipe, path, lora.side)
    # fp16 rounds each weight by at most 2^-11 of itself: the pictures move by about 1e-4,
    # a hundredth or less of what the LoRA moves them.
    assert (half - full).abs().max() < 0.01 * (full - base).abs().max()


def test_the_trainer_writes_the_specs_metadata(on_sd15: Trained) -> None:
    assert read_metadata(on_sd15.lora.read_bytes()) == {"format": "pt", **METADATA}


@pytest.mark.parametrize("name", ["sd15", "sdxl"])
def test_every_kohya_key_names_a_layer_of_the_ldm_unet_and_none_is_missing(
    request: pytest.FixtureRequest, name: str, tmp_path: Path
) -> None:
    trained: Trained = request.getfixturevalue(f"on_{name}")
    unet = trained.pipeline().unet
    ldm = ldm_state_dict(unet)
    # The LDM names are right: diffusers' own LDM → diffusers conversion gives the UNet back.
    back = convert_ldm_unet_checkpoint(
        {f"model.diffusion_model.{k}": v for k, v in ldm.items()}, unet.config
    )
    original = unet.state_dict()
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)

    layers = {
        k.removesuffix(".weight").replace(".", "_"): v.shape
        for k, v in ldm.items()
        if k.endswith(".weight")
    }
    tensors = load_file(trained.convert(WeightsDtype.FP32, tmp_path / "k.safetensors"))
    names = {key.split(".")[0] for key in tensors}
    for kohya in names:
        layer = kohya.removeprefix("lora_unet_")
        assert kohya.startswith("lora_unet_"), kohya
        assert layer in layers, kohya
        down, up = tensors[f"{kohya}.lora_down.weight"], tensors[f"{kohya}.lora_up.weight"]
        assert layers[layer] == (up.shape[0], down.shape[1]), kohya
        assert tensors[f"{kohya}.alpha"].item() == down.shape[0] == LORA_HYPER.rank
    # Every layer the trainer adapts (the attention projections), once each.
    adapted = {
        "lora_unet_" + ldm_name(f"{module}.weight", unet.config).removesuffix(".weight")
        for module, _ in unet.named_modules()
        if any(module.endswith(f".{target}") for target in TARGET_MODULES)
    }
    assert names == {n.replace(".", "_") for n in adapted}
    assert len(names) == len(load_file(trained.lora)) // 2
    expected_blocks = {
        "sd15": {1, 2, 4, 5, 7, 8},  # SD 1.5's input blocks with attention
        "sdxl": {4, 5, 7, 8},
    }[name]
    assert {int(n.split("_")[4]) for n in names if "input_blocks" in n} == expected_blocks
