"""The base-model registry and the packaged tiny model; importing the adapters stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loraforge.adapters.ml.registry import TINY, BaseModelRegistry, RegistryConfigError
from loraforge.adapters.ml.tiny import TINY_RESOLUTION, WEIGHTS_DIR
from loraforge.domain.ml import ModelFamily


def test_importing_the_adapters_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import loraforge.adapters.ml.registry, loraforge.adapters.ml.trainer\n"
        "import loraforge.adapters.ml.generator\n"
        "heavy = {'torch', 'diffusers', 'peft', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_registry_lists_tiny_by_default() -> None:
    registry = BaseModelRegistry()
    assert registry.list() == [TINY]
    assert registry.default == "tiny"
    assert registry.get("tiny").resolution == TINY_RESOLUTION
    with pytest.raises(KeyError):
        registry.get("sd15")


def test_a_json_list_adds_models_and_the_first_becomes_default(tmp_path: Path) -> None:
    config = tmp_path / "base-models.json"
    entry = {"name": "sdxl-local", "family": "sdxl", "resolution": 1024, "path": "sdxl"}
    config.write_text(json.dumps([entry]))
    registry = BaseModelRegistry(config)
    model = registry.get("sdxl-local")
    assert (model.family, model.resolution, model.path) == (
        ModelFamily.SDXL,
        1024,
        tmp_path / "sdxl",
    )
    assert [m.name for m in registry.list()] == ["tiny", "sdxl-local"]
    assert registry.default == "sdxl-local"
    assert BaseModelRegistry(config, default="tiny").default == "tiny"


def test_a_toml_file_names_its_default(tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(
        'default = "tiny"\n[[models]]\nname = "sd15"\nfamily = "sd15"\n'
        'resolution = 512\npath = "/models/sd15.safetensors"\n'
    )
    registry = BaseModelRegistry(config)
    assert registry.default == "tiny"
    assert registry.get("sd15").path == Path("/models/sd15.safetensors")


@pytest.mark.parametrize(
    "entries",
    [
        [{"name": "tiny", "family": "sd15", "resolution": 512, "path": "x"}],
        [{"name": "Bad Name", "family": "sd15", "resolution": 512, "path": "x"}],
        [{"name": "a", "family": "sd4", "resolution": 512, "path": "x"}],
        [{"name": "a", "family": "flux", "resolution": 1024, "path": "flux.safetensors"}],
        [{"name": "a", "family": "sd15", "resolution": 500, "path": "x"}],
        [{"name": "a", "family": "sd15", "resolution": 512}],
        {"models": "nope"},
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, entries: object) -> None:
    config = tmp_path / "models.json"
    config.write_text(json.dumps(entries))
    with pytest.raises(RegistryConfigError):
        BaseModelRegistry(config)


def test_the_packaged_tiny_weights_are_small_and_load() -> None:
    from loraforge.adapters.ml.device import pick_placement
    from loraforge.adapters.ml.pipelines import load_pipeline

    weights = sum(p.stat().st_size for p in WEIGHTS_DIR.rglob("*.safetensors"))
    assert weights < 12 * 1024 * 1024
    pipe = load_pipeline(TINY, pick_placement())
    assert pipe.unet.config.sample_size * 8 == TINY_RESOLUTION
    assert pipe.tokenizer.model_max_length == 77
    ids = pipe.tokenizer("a photo of FJA90AB").input_ids
    assert pipe.tokenizer.unk_token_id not in ids[1:-1]  # any trigger word tokenizes
