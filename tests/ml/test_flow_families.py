"""The flow-matching families (SD3, FLUX) on tiny pipelines built as diffusers' own tests build
them, saved to a folder and configured in the registry as an operator configures real ones."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from PIL import Image

from loraforge.adapters.ml.generator import DiffusersGenerator
from loraforge.adapters.ml.registry import BaseModelRegistry
from loraforge.domain.ml import BaseModel, GenerationSpec, ModelFamily, PredictionInput
from loraforge.domain.ml import supported_inputs as inputs_of
from tests.ml.pictures import TRIGGER
from tests.ml.shaped import flux_shaped, sd3_shaped


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> BaseModelRegistry:
    """``flux`` (dev: guidance embedding), ``flux-schnell`` and ``sd3`` from local folders."""
    root = tmp_path_factory.mktemp("flow")
    flux_shaped(root / "flux-dev")
    flux_shaped(root / "flux-schnell", guidance=False)
    sd3_shaped(root / "sd3")
    entries = [
        {"name": "flux", "family": "flux", "resolution": 256, "path": "flux-dev"},
        {"name": "flux-schnell", "family": "flux", "resolution": 256, "path": "flux-schnell"},
        {"name": "sd3", "family": "sd3", "resolution": 256, "path": "sd3"},
    ]
    config = root / "base-models.json"
    config.write_text(json.dumps(entries))
    return BaseModelRegistry(config)


def request(base: BaseModel) -> GenerationSpec:
    return GenerationSpec(
        base_model=base,
        prompt=f"{TRIGGER}, a square",
        seed=1,
        width=64,
        height=64,
        num_images=2,
        guidance_scale=3.5,
        num_inference_steps=3,
        output_format="png",
    )


def test_the_registry_reads_the_families_and_their_inputs(registry: BaseModelRegistry) -> None:
    families = {m.name: m.family for m in registry.list()}
    assert families["flux"] is families["flux-schnell"] is ModelFamily.FLUX
    assert families["sd3"] is ModelFamily.SD3
    assert inputs_of(registry.get("flux")) == [
        PredictionInput.INIT_IMAGE,
        PredictionInput.MASK_IMAGE,
    ]
    assert inputs_of(registry.get("sd3")) == [
        PredictionInput.NEGATIVE_PROMPT,
        PredictionInput.INIT_IMAGE,
        PredictionInput.MASK_IMAGE,
    ]


@pytest.mark.parametrize("name", ["flux", "flux-schnell", "sd3"])
def test_each_family_generates_the_same_bytes_for_the_same_seed(
    registry: BaseModelRegistry, generator: DiffusersGenerator, name: str
) -> None:
    spec = request(registry.get(name))
    first = generator.generate(spec)
    assert generator.generate(spec) == first
    assert len(first) == 2
    assert first[0] != first[1]
    assert Image.open(io.BytesIO(first[0])).size == (64, 64)
    assert generator.generate(replace(spec, seed=2)) != first
    with pytest.raises(ValueError, match="own scheduler"):
        generator.generate(replace(spec, scheduler="euler"))


def test_flux_ignores_a_negative_prompt_and_sd3_uses_it(
    registry: BaseModelRegistry, generator: DiffusersGenerator
) -> None:
    for name, changes in (("flux", False), ("sd3", True)):
        spec = request(registry.get(name))
        steered = generator.generate(replace(spec, negative_prompt="a blue circle"))
        assert (steered != generator.generate(spec)) is changes


@pytest.mark.parametrize("name", ["flux", "sd3"])
def test_each_family_repaints_and_inpaints(
    registry: BaseModelRegistry, generator: DiffusersGenerator, name: str
) -> None:
    spec = request(registry.get(name))
    init, _ = generator.generate(spec)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    repainted = replace(spec, init_image=init, strength=0.7)
    assert generator.generate(repainted) == generator.generate(repainted)
    inpainted = generator.generate(replace(repainted, mask_image=buffer.getvalue()))
    with Image.open(io.BytesIO(inpainted[0])) as out, Image.open(io.BytesIO(init)) as before:
        assert out.getpixel((2, 2)) == before.convert("RGB").getpixel((2, 2))  # kept as it was
