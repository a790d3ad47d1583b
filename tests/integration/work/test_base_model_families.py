"""SD3 and FLUX base models through the native API: listed with their family, resolution and
inputs; a scheduler they cannot use and a mix of base models answer 422 naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loraforge.bootstrap import build_worker
from loraforge.settings import Settings
from tests.conftest import serving
from tests.integration.work.conftest import Work
from tests.ml_fakes import FakeGenerator, FakeTrainer

MODELS: list[dict[str, Any]] = [
    {"name": "flux-dev", "family": "flux", "resolution": 1024, "path": "flux-dev"},
    {"name": "sd35", "family": "sd3", "resolution": 1024, "path": "sd35"},
]


@pytest.fixture
def families(settings: Settings, tmp_path: Path) -> Iterator[Work]:
    for model in MODELS:  # stand-ins for the folders: the fake trainer loads nothing
        folder = tmp_path / str(model["path"])
        folder.mkdir()
        (folder / "model_index.json").write_text("{}")
    config = tmp_path / "base-models.json"
    config.write_text(json.dumps(MODELS))
    configured = settings.model_copy(
        update={"base_models_config": config, "default_base_model": "tiny"}
    )
    with serving(configured) as api:
        trainer, generator = FakeTrainer(), FakeGenerator()
        worker = build_worker(api.container, trainer=trainer, generator=generator, owner="t")
        yield Work(api=api, worker=worker, trainer=trainer, generator=generator)


def _trained(work: Work, base_model: str) -> tuple[str, str]:
    model_id = work.model_with_images(1, baseModel=base_model)
    training_id = work.train(model_id)
    work.run_jobs()
    return model_id, training_id


def _prediction(*trained: tuple[str, str], **extra: Any) -> dict[str, Any]:
    configs = {
        str(n): {"scale": 0.5, "modelId": model_id, "trainingId": training_id}
        for n, (model_id, training_id) in enumerate(trained, start=1)
    }
    return {"scaleConfigs": configs, "prompt": "a dress", "seed": 3, **extra}


def test_the_families_are_listed_with_their_inputs(families: Work) -> None:
    listed = families.api.client.get("/v1/base-models", headers=families.api.headers).json()
    by_name = {m["name"]: m for m in listed}
    assert (by_name["flux-dev"]["family"], by_name["flux-dev"]["resolution"]) == ("flux", 1024)
    assert by_name["flux-dev"]["inputs"] == ["init_image", "mask_image"]
    assert by_name["sd35"]["family"] == "sd3"
    assert by_name["sd35"]["inputs"] == ["negative_prompt", "init_image", "mask_image"]
    assert "scheduler" in by_name["tiny"]["inputs"]


def test_a_flow_matching_model_takes_no_scheduler(families: Work) -> None:
    flux = _trained(families, "flux-dev")
    client, headers = families.api.client, families.api.headers
    answer = client.post(
        "/v1/predictions", json=_prediction(flux, scheduler="euler"), headers=headers
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("scheduler_unsupported", "scheduler")
    assert "flux-dev" in error["message"]
    # FLUX ignores a negative prompt (guidance-distilled): accepted, recorded, listed as unused
    fine = client.post(
        "/v1/predictions", json=_prediction(flux, negative_prompt="blurry"), headers=headers
    )
    assert fine.status_code == 201, fine.text
    families.run_jobs()
    assert families.generator.specs[-1].base_model.family == "flux"


def test_loras_of_different_base_models_do_not_mix(families: Work) -> None:
    flux, sd3 = _trained(families, "flux-dev"), _trained(families, "sd35")
    answer = families.api.client.post(
        "/v1/predictions", json=_prediction(flux, sd3), headers=families.api.headers
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("mixed_base_models", "scaleConfigs")
    assert "flux-dev" in error["message"]
    assert "sd35" in error["message"]
