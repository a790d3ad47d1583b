"""What a LoRA file says about itself: ModelSpec, kohya's ss_* keys and loraforge's own."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loraforge.domain.ml import BaseModel, Hyperparameters, ModelFamily
from loraforge.domain.weights import (
    TINY_NOTE,
    WeightsDtype,
    WeightsFormat,
    is_loraforge_metadata,
    lora_metadata,
    manifest_sha256,
    reformatted,
    weights_filename,
)
from loraforge.domain.work import RunStatus, Training, TrainingSpeed

HYPER = Hyperparameters(
    steps=650, learning_rate=0.00048, rank=16, resolution=512, checkpoint_every=100, seed=4789
)
SD15 = BaseModel("sd15", ModelFamily.SD15, 512, path=Path("/models/sd15"))
SDXL = BaseModel("sdxl", ModelFamily.SDXL, 1024, path=Path("/models/sdxl"))
TINY = BaseModel("tiny", ModelFamily.SD15, 256)


def training(**manifest_changes: object) -> Training:
    manifest = {
        "baseModel": "sd15",
        "triggerWord": "sks",
        "hyperparameters": vars(HYPER),
        "images": [{"id": "i-1", "sha256": "ab" * 32, "caption": "a photo of sks"}],
        **manifest_changes,
    }
    return Training(
        id="tr-1",
        account_id="acc",
        model_id="m-1",
        status=RunStatus.SUCCEEDED,
        strength=7,
        speed=TrainingSpeed.HIGH_QUALITY,
        trigger_word="sks",
        manifest=manifest,
        created_at=datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC),
        started_at=datetime(2026, 3, 1, 9, 0, 5, 654321, tzinfo=UTC),
    )


def test_an_sd15_lora_says_what_it_is_how_it_was_trained_and_where_from() -> None:
    t = training()
    assert lora_metadata(t, SD15, title="My dog") == {
        "format": "pt",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": "My dog",
        "modelspec.trigger_phrase": "sks",
        "modelspec.date": "2026-03-01T09:00:05+00:00",
        "modelspec.resolution": "512x512",
        "ss_network_module": "networks.lora",
        "ss_network_dim": "16",
        "ss_network_alpha": "16",
        "ss_base_model_version": "sd_v1",
        "ss_steps": "650",
        "ss_learning_rate": "0.00048",
        "ss_seed": "4789",
        "loraforge.training_id": "tr-1",
        "loraforge.manifest_sha256": manifest_sha256(t.manifest),
        "loraforge.base_model_id": "sd15",
        "loraforge.format": "diffusers",
    }


def test_sdxl_and_kohya_values() -> None:
    metadata = lora_metadata(training(), SDXL, title="t", weights_format=WeightsFormat.KOHYA)
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    assert metadata["modelspec.implementation"] == (
        "https://github.com/Stability-AI/generative-models"
    )
    assert metadata["loraforge.format"] == "kohya"
    assert "loraforge.note" not in metadata


def test_the_tiny_models_files_say_plainly_where_they_load() -> None:
    metadata = lora_metadata(training(baseModel="tiny"), TINY, title="t")
    assert metadata["modelspec.architecture"] == "loraforge-tiny/lora"
    assert metadata["ss_base_model_version"] == "loraforge_tiny"
    assert metadata["loraforge.base_model_id"] == "tiny"
    assert metadata["loraforge.note"] == TINY_NOTE
    assert "loads only into loraforge's tiny model" in TINY_NOTE


def test_every_value_is_a_string() -> None:
    metadata = lora_metadata(training(), SDXL, title="t", receipt_sha256="cd" * 32)
    assert all(isinstance(v, str) for v in metadata.values())
    assert metadata["loraforge.receipt_sha256"] == "cd" * 32


def test_another_format_changes_only_what_says_the_format() -> None:
    diffusers = lora_metadata(training(), SD15, title="t")
    kohya = reformatted(diffusers, WeightsFormat.KOHYA)
    changed = {k for k in kohya if kohya[k] != diffusers.get(k)}
    assert changed == {"modelspec.implementation", "loraforge.format"}
    assert reformatted(kohya, WeightsFormat.DIFFUSERS) == diffusers
    assert is_loraforge_metadata(kohya)
    assert not is_loraforge_metadata({"format": "pt"})


def test_the_date_is_the_first_start_else_the_creation() -> None:
    queued = replace(training(), started_at=None)
    assert lora_metadata(queued, SD15, title="t")["modelspec.date"] == "2026-03-01T09:00:00+00:00"


def test_the_manifest_hash_is_over_canonical_json() -> None:
    manifest = {"b": [1, 2.5, "é"], "a": {"y": None, "x": True}}
    canonical = '{"a":{"x":true,"y":null},"b":[1,2.5,"é"]}'.encode()
    assert manifest_sha256(manifest) == hashlib.sha256(canonical).hexdigest()
    assert manifest_sha256(dict(reversed(list(manifest.items())))) == manifest_sha256(manifest)


@pytest.mark.parametrize(
    ("weights_format", "dtype", "name"),
    [
        (WeightsFormat.DIFFUSERS, WeightsDtype.FP32, "tr-1.safetensors"),
        (WeightsFormat.DIFFUSERS, WeightsDtype.FP16, "tr-1-diffusers-fp16.safetensors"),
        (WeightsFormat.KOHYA, WeightsDtype.FP32, "tr-1-kohya-fp32.safetensors"),
    ],
)
def test_file_names(weights_format: WeightsFormat, dtype: WeightsDtype, name: str) -> None:
    assert weights_filename("tr-1", weights_format, dtype) == name
